/**
 * A set of shard indexes kept as sorted, disjoint [start, end) ranges. Shards
 * are leased in order and finish close to it, so a campaign's done shards are
 * a few ranges however many there are: memory follows how scattered they are,
 * not the campaign's size (a bitset of a 1e9-shard campaign is 125 MB on every
 * node that holds it).
 */
export class RangeSet {
  readonly #starts: number[] = []
  readonly #ends: number[] = []
  #count = 0

  get count (): number {
    return this.#count
  }

  /** how many ranges: what the set's memory follows */
  get ranges (): number {
    return this.#starts.length
  }

  has (i: number): boolean {
    const r = this.#find(i)
    return r >= 0 && i < this.#ends[r]!
  }

  /** true when `i` was not in the set */
  add (i: number): boolean {
    const r = this.#find(i)
    if (r >= 0 && i < this.#ends[r]!) return false
    this.#count++
    const joinsLeft = r >= 0 && this.#ends[r] === i
    const joinsRight = r + 1 < this.#starts.length && this.#starts[r + 1] === i + 1
    if (joinsLeft && joinsRight) {
      this.#ends[r] = this.#ends[r + 1]!
      this.#starts.splice(r + 1, 1)
      this.#ends.splice(r + 1, 1)
    } else if (joinsLeft) {
      this.#ends[r] = i + 1
    } else if (joinsRight) {
      this.#starts[r + 1] = i
    } else {
      this.#starts.splice(r + 1, 0, i)
      this.#ends.splice(r + 1, 0, i + 1)
    }
    return true
  }

  /** The first index at or after `from` that is not in the set. */
  nextAbsent (from: number): number {
    const r = this.#find(from)
    return r >= 0 && from < this.#ends[r]! ? this.#ends[r]! : from
  }

  /** The ranges, in order. */
  * entries (): Generator<[number, number]> {
    for (let r = 0; r < this.#starts.length; r++) yield [this.#starts[r]!, this.#ends[r]!]
  }

  /** The last range starting at or before `i`, or -1. */
  #find (i: number): number {
    let lo = 0
    let hi = this.#starts.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      if (this.#starts[mid]! <= i) {
        found = mid
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    return found
  }
}

/** Indexes as compact text for logs and the audit: `0-63,65,70-80`. */
export function formatRanges (indexes: Iterable<number> | RangeSet): string {
  let set: RangeSet
  if (indexes instanceof RangeSet) {
    set = indexes
  } else {
    set = new RangeSet()
    for (const i of indexes) set.add(i)
  }
  return [...set.entries()].map(([s, e]) => e - s === 1 ? String(s) : `${s}-${e - 1}`).join(',')
}

/** The indexes of `formatRanges` text (`0-63,65`), in order; anything else is none. */
export function parseRanges (text: unknown): number[] {
  if (typeof text !== 'string' || text === '') return []
  return text.split(',').flatMap(part => {
    const [a, b] = part.split('-').map(Number)
    if (!Number.isInteger(a) || (b != null && !Number.isInteger(b))) return []
    return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i)
  })
}
