/**
 * Shards per second over the last minute, and the ETA it implies: a sliding
 * window of one-second buckets (bounded memory however fast shards finish),
 * so a campaign that gains or loses workers shows its current pace.
 */
export class Throughput {
  readonly #buckets: Array<{ second: number, count: number }> = []
  readonly #windowS: number
  #first: number | undefined

  constructor (windowS = 60) {
    this.#windowS = windowS
  }

  add (now: number): void {
    this.#first ??= now
    const second = Math.floor(now / 1000)
    const last = this.#buckets.at(-1)
    if (last?.second === second) last.count++
    else this.#buckets.push({ second, count: 1 })
    this.#trim(second)
  }

  /** completions per second over the window (or since the first completion, if that is more recent) */
  rate (now: number): number {
    this.#trim(Math.floor(now / 1000))
    if (this.#first == null || this.#buckets.length === 0) return 0
    const count = this.#buckets.reduce((n, b) => n + b.count, 0)
    const spanMs = Math.min(this.#windowS * 1000, now - this.#first)
    return count / Math.max(1, spanMs / 1000)
  }

  etaMs (remaining: number, now: number): number | undefined {
    const r = this.rate(now)
    return r > 0 ? Math.round(remaining / r * 1000) : undefined
  }

  #trim (second: number): void {
    while (this.#buckets.length > 0 && this.#buckets[0]!.second <= second - this.#windowS) this.#buckets.shift()
  }
}
