/**
 * Shard run times of a campaign as a fixed histogram: what `zp status --json`
 * and the dashboard show while it runs (summary.html draws the exact ones at
 * the end). Bounds roughly triple from 10 ms to 50 min, so any workload lands
 * in a readable spread of a dozen bars, and the message stays small.
 */
export const DURATION_BOUNDS_MS: readonly number[] = [10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000]

export interface DurationCounts {
  /** upper bounds (inclusive) of the buckets; one more bucket counts what is above the last */
  boundsMs: number[]
  counts: number[]
}

export class DurationHistogram {
  readonly #counts = new Array<number>(DURATION_BOUNDS_MS.length + 1).fill(0)

  add (ms: number): void {
    const i = DURATION_BOUNDS_MS.findIndex(b => ms <= b)
    this.#counts[i < 0 ? DURATION_BOUNDS_MS.length : i]!++
  }

  snapshot (): DurationCounts {
    return { boundsMs: [...DURATION_BOUNDS_MS], counts: [...this.#counts] }
  }
}
