import type { GridValue, Sharding } from '../../protocols/campaign/spec.ts'
import type { Shard } from '../../protocols/campaign/shard.ts'

/**
 * The shards of a campaign, computed on demand: shard i is a pure function of
 * the spec (and, for rows, the data set's shard offsets), so nothing is built
 * up front and every node that holds the spec derives the same shard i.
 */
export class ShardPlan {
  readonly count: number
  readonly #sharding: Sharding
  readonly #offsets: readonly number[]
  readonly #totalItems: number
  /** grid: parameter names in enumeration order, and each one's values */
  readonly #names: string[] = []
  readonly #values: GridValue[][] = []

  constructor (sharding: Sharding, opts: { rows?: number, offsets?: readonly number[] } = {}) {
    this.#sharding = sharding
    this.#offsets = opts.offsets ?? []
    switch (sharding.kind) {
      case 'rows':
        this.#totalItems = opts.rows ?? 0
        break
      case 'iterations':
        this.#totalItems = sharding.total
        break
      case 'grid':
        this.#names = Object.keys(sharding.parameters).sort()
        this.#values = this.#names.map(n => sharding.parameters[n]!)
        this.#totalItems = this.#values.reduce((n, v) => n * v.length, 1)
        break
    }
    this.count = Math.ceil(this.#totalItems / sharding.perShard)
    if (sharding.kind === 'rows' && this.#offsets.length !== this.count + 1) {
      throw new Error(`a rows plan needs ${this.count + 1} offsets, got ${this.#offsets.length}`)
    }
  }

  /** total rows, iterations or grid points */
  get items (): number {
    return this.#totalItems
  }

  /** Shard `index` without its slice hash (which the coordinator adds for rows shards). */
  at (index: number): DistributiveOmit<Shard, 'sliceHash'> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RangeError(`shard ${index} is outside 0..${this.count - 1}`)
    const s = this.#sharding
    const start = index * s.perShard
    const end = Math.min(this.#totalItems, start + s.perShard)
    const seed = shardSeed(s.seed, index)
    switch (s.kind) {
      case 'rows':
        return { kind: 'rows', index, seed, start, end, byteStart: this.#offsets[index]!, byteEnd: this.#offsets[index + 1]! }
      case 'iterations':
        return { kind: 'iterations', index, seed, start, end }
      case 'grid':
        return { kind: 'grid', index, seed, start, end, points: Array.from({ length: end - start }, (_, k) => this.point(start + k)) }
    }
  }

  /** Grid point `k`: mixed-radix digits, the last parameter (sorted by name) varying fastest. */
  point (k: number): Record<string, GridValue> {
    const out: Record<string, GridValue> = {}
    let rest = k
    for (let p = this.#names.length - 1; p >= 0; p--) {
      const values = this.#values[p]!
      out[this.#names[p]!] = values[rest % values.length]!
      rest = Math.floor(rest / values.length)
    }
    // keep the documented order (names sorted) in the object too
    return Object.fromEntries(this.#names.map(n => [n, out[n]!]))
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/**
 * A shard's seed from the campaign seed: a 32-bit hash of (seed, index)
 * (murmur3's finaliser), so neighbouring shards get unrelated streams.
 */
export function shardSeed (base: number, index: number): number {
  let h = (Math.imul(base | 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b) >>> 0
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35) >>> 0
  h ^= h >>> 16
  return h >>> 0
}
