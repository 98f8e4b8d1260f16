// European option pricing by Monte Carlo under geometric Brownian motion.
//
// Each shard simulates paths [shard.start, shard.end) of the terminal price
//   S_T = S_0 · exp((r − σ²/2)·T + σ·√T·Z),  Z ~ N(0, 1)
// and returns ONE row { paths, sumPayoff, sumPayoffSq } of undiscounted
// payoffs, so the campaign's estimate is exp(−rT) · Σ sumPayoff / Σ paths and
// its standard error follows from Σ sumPayoffSq (examples/monte-carlo/estimate.ts).
//
// Self-contained on purpose: workers import it from a content-addressed cache,
// where sibling files and npm packages are not there to import.

/** xoshiro128** (Blackman & Vigna): small, fast, and good enough for Monte Carlo; uniform in [0, 1). */
function xoshiro128ss (seed) {
  // splitmix32 spreads one 32-bit seed over the four words of state (never all zero)
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
    return (z ^ (z >>> 15)) >>> 0
  }
  let a = next()
  let b = next()
  let c = next()
  let d = next()
  return () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9)
    const t = b << 9
    c ^= a
    d ^= b
    b ^= c
    a ^= d
    c ^= t
    d = rotl(d, 11)
    return (result >>> 0) / 4294967296
  }
}

function rotl (x, k) {
  return (x << k) | (x >>> (32 - k))
}

/** Standard normals by Marsaglia's polar method; each accepted pair gives two. */
function normals (random) {
  let spare = NaN
  return () => {
    if (!Number.isNaN(spare)) {
      const z = spare
      spare = NaN
      return z
    }
    let u, v, s
    do {
      u = 2 * random() - 1
      v = 2 * random() - 1
      s = u * u + v * v
    } while (s >= 1 || s === 0)
    const f = Math.sqrt(-2 * Math.log(s) / s)
    spare = v * f
    return u * f
  }
}

/** A bad campaign fails the same way on every retry: `retryable = false` sends it straight to the dead-letter list. */
function badInput (message) {
  const err = new Error(message)
  err.retryable = false
  return err
}

function positive (params, name) {
  const value = params[name]
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw badInput(`params.${name} must be a positive number (got ${JSON.stringify(value)})`)
  }
  return value
}

function readParams (params) {
  const option = params.option ?? 'call'
  if (option !== 'call' && option !== 'put') throw badInput(`params.option must be "call" or "put" (got ${JSON.stringify(option)})`)
  const rate = params.rate
  if (typeof rate !== 'number' || !Number.isFinite(rate)) throw badInput(`params.rate must be a number (got ${JSON.stringify(rate)})`)
  return {
    option,
    spot: positive(params, 'spot'),
    strike: positive(params, 'strike'),
    rate,
    volatility: positive(params, 'volatility'),
    maturity: positive(params, 'maturity')
  }
}

/** progress reports per shard: one each tenth */
const REPORTS = 10
/** paths between looks at the abort signal (~10 ms), so a cancel lands fast however large the shard */
const CHECK_EVERY = 100_000

export async function run (shard, ctx) {
  if (shard.kind !== 'iterations') throw badInput(`price.mjs simulates iteration shards (shards.iterations), not ${shard.kind} shards`)
  const { option, spot, strike, rate, volatility, maturity } = readParams(ctx.params)
  const normal = normals(xoshiro128ss(shard.seed))
  const drift = (rate - volatility * volatility / 2) * maturity
  const diffusion = volatility * Math.sqrt(maturity)
  const call = option === 'call'
  const paths = shard.end - shard.start
  const chunk = Math.max(1, Math.min(CHECK_EVERY, Math.ceil(paths / REPORTS)))
  // summed in path order only, so the row is bit-identical wherever the shard runs
  let sumPayoff = 0
  let sumPayoffSq = 0
  let reported = 0
  for (let done = 0; done < paths;) {
    const stop = Math.min(paths, done + chunk)
    for (; done < stop; done++) {
      const terminal = spot * Math.exp(drift + diffusion * normal())
      const payoff = call ? Math.max(terminal - strike, 0) : Math.max(strike - terminal, 0)
      sumPayoff += payoff
      sumPayoffSq += payoff * payoff
    }
    const tenths = Math.floor(REPORTS * done / paths)
    if (tenths > reported) {
      reported = tenths
      ctx.progress(done / paths)
    }
    // The abort and the progress report travel through this thread's event
    // loop, which a synchronous loop would hold: let it turn, then look.
    await new Promise((resolve) => setImmediate(resolve))
    if (ctx.signal.aborted) throw new Error('cancelled')
  }
  return { paths, sumPayoff, sumPayoffSq }
}
