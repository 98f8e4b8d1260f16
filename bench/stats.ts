export interface Stats {
  n: number
  mean: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
}

/** Summary statistics; percentiles interpolate linearly between the nearest ranks. */
export function summarize (values: ArrayLike<number>): Stats {
  if (values.length === 0) throw new RangeError('no samples to summarize')
  const sorted = Float64Array.from(values).sort()
  let sum = 0
  for (const v of sorted) sum += v
  return {
    n: sorted.length,
    mean: sum / sorted.length,
    min: sorted[0]!,
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1]!
  }
}

function percentile (sorted: Float64Array, q: number): number {
  const rank = q * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.min(lo + 1, sorted.length - 1)
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo)
}
