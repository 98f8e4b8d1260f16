/** One bit per shard: which are done, without a million-entry Set. */
export class Bitset {
  readonly #bits: Uint8Array
  #count = 0

  constructor (size: number) {
    this.#bits = new Uint8Array(Math.ceil(size / 8))
  }

  has (i: number): boolean {
    return (this.#bits[i >>> 3]! & (1 << (i & 7))) !== 0
  }

  /** true when the bit was newly set */
  add (i: number): boolean {
    if (this.has(i)) return false
    this.#bits[i >>> 3]! |= 1 << (i & 7)
    this.#count++
    return true
  }

  get count (): number {
    return this.#count
  }
}
