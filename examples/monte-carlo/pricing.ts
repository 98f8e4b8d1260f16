/**
 * The arithmetic behind the option-pricing example: the Monte Carlo estimate
 * from the shards' rows, and the Black–Scholes price it should approach.
 */

export interface OptionParams {
  option: 'call' | 'put'
  spot: number
  strike: number
  rate: number
  volatility: number
  maturity: number
}

/** One result row of price.mjs, as `zp results` exports it. */
export interface ShardRow {
  paths: number
  sumPayoff: number
  sumPayoffSq: number
}

export interface Estimate {
  shards: number
  paths: number
  price: number
  standardError: number
}

/** The campaign's `params`, checked as price.mjs checks them. */
export function optionParams (params: Record<string, unknown>): OptionParams {
  const num = (name: string, positive: boolean): number => {
    const value = params[name]
    if (typeof value !== 'number' || !Number.isFinite(value) || (positive && value <= 0)) {
      throw new Error(`params.${name} must be a ${positive ? 'positive ' : ''}number (got ${JSON.stringify(value)})`)
    }
    return value
  }
  const option = params.option ?? 'call'
  if (option !== 'call' && option !== 'put') throw new Error(`params.option must be "call" or "put" (got ${JSON.stringify(option)})`)
  return { option, spot: num('spot', true), strike: num('strike', true), rate: num('rate', false), volatility: num('volatility', true), maturity: num('maturity', true) }
}

/** Discounted mean payoff over all paths, and its standard error (sample variance, n − 1). */
export function estimate (rows: Iterable<ShardRow>, p: OptionParams): Estimate {
  let shards = 0
  let paths = 0
  let sum = 0
  let sumSq = 0
  for (const row of rows) {
    shards++
    paths += row.paths
    sum += row.sumPayoff
    sumSq += row.sumPayoffSq
  }
  if (paths < 2) throw new Error(`need at least 2 paths for a standard error, got ${paths}`)
  const discount = Math.exp(-p.rate * p.maturity)
  const mean = sum / paths
  // clamped: rounding can take a near-zero variance just below zero
  const variance = Math.max(0, (sumSq - paths * mean * mean) / (paths - 1))
  return { shards, paths, price: discount * mean, standardError: discount * Math.sqrt(variance / paths) }
}

/** The closed-form price of a European option under the same model. */
export function blackScholes (p: OptionParams): number {
  const sd = p.volatility * Math.sqrt(p.maturity)
  const d1 = (Math.log(p.spot / p.strike) + (p.rate + p.volatility * p.volatility / 2) * p.maturity) / sd
  const d2 = d1 - sd
  const discountedStrike = p.strike * Math.exp(-p.rate * p.maturity)
  return p.option === 'call'
    ? p.spot * normalCdf(d1) - discountedStrike * normalCdf(d2)
    : discountedStrike * normalCdf(-d2) - p.spot * normalCdf(-d1)
}

/** Φ(x) through erfc (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7): ample beside a Monte Carlo error. */
export function normalCdf (x: number): number {
  const z = Math.abs(x) / Math.SQRT2
  const t = 1 / (1 + z / 2)
  const poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  const erfc = t * Math.exp(-z * z + poly)
  return x >= 0 ? 1 - erfc / 2 : erfc / 2
}
