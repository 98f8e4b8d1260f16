// Step response of a series RLC circuit, output across the capacitor, for
// each point of a resistance × inductance × capacitance grid: a transient
// analysis as a circuit simulator runs it, integrated with fixed-step RK4.
//
//   v' = i / C          v: capacitor voltage, i: loop current,
//   i' = (V − v − R·i) / L   V: the step applied at t = 0, from rest
//
// One row per grid point: the textbook figures of merit (peak, overshoot,
// 10–90% rise time, settling time into a band around V), plus the damping
// ratio ζ = (R/2)·√(C/L) and natural frequency that explain them: overshoot
// depends on ζ alone, so every point falls on exp(−πζ/√(1−ζ²)) when ζ < 1.
//
// Self-contained on purpose: workers import it from a content-addressed cache.

/** A bad campaign fails the same way on every retry: `retryable = false` sends it straight to the dead-letter list. */
function badInput (message) {
  const err = new Error(message)
  err.retryable = false
  return err
}

function positive (record, name, where) {
  const value = record[name]
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw badInput(`${where}.${name} must be a positive number (got ${JSON.stringify(value)})`)
  }
  return value
}

/** Integrates one circuit and measures its response. */
function simulate ({ resistance: R, inductance: L, capacitance: C }, params) {
  const V = params.stepVoltage
  // the fastest time scale sets the step: 1/ω0 when it rings, L/R for the fast pole when overdamped
  const dt = Math.min(Math.sqrt(L * C), L / R) / params.stepsPerTimeConstant
  // the slowest sets the horizon: the envelope 2L/R when it rings, at most RC for the slow pole when overdamped
  const horizon = 12 * Math.max(2 * L / R, R * C)
  const steps = Math.ceil(horizon / dt)
  if (steps > params.maxSteps) {
    throw badInput(`R=${R} L=${L} C=${C} needs ${steps} steps (more than params.maxSteps=${params.maxSteps}); narrow the grid or raise maxSteps`)
  }
  const dv = (i) => i / C
  const di = (v, i) => (V - v - R * i) / L
  const band = params.settlingBand * V
  let v = 0
  let i = 0
  let peak = 0
  let peakTime = 0
  let t10 = null
  let t90 = null
  let lastOutside = 0
  for (let n = 1; n <= steps; n++) {
    const k1v = dv(i)
    const k1i = di(v, i)
    const k2v = dv(i + dt / 2 * k1i)
    const k2i = di(v + dt / 2 * k1v, i + dt / 2 * k1i)
    const k3v = dv(i + dt / 2 * k2i)
    const k3i = di(v + dt / 2 * k2v, i + dt / 2 * k2i)
    const k4v = dv(i + dt * k3i)
    const k4i = di(v + dt * k3v, i + dt * k3i)
    const previous = v
    v += dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
    i += dt / 6 * (k1i + 2 * k2i + 2 * k3i + k4i)
    const t = n * dt
    if (v > peak) {
      peak = v
      peakTime = t
    }
    // threshold crossings between samples, by linear interpolation
    t10 ??= crossing(previous, v, 0.1 * V, t, dt)
    t90 ??= crossing(previous, v, 0.9 * V, t, dt)
    if (Math.abs(v - V) > band) lastOutside = t
  }
  const zeta = (R / 2) * Math.sqrt(C / L)
  return {
    zeta,
    naturalFrequencyHz: 1 / (2 * Math.PI * Math.sqrt(L * C)),
    peakVoltage: peak,
    overshootPercent: Math.max(0, (peak - V) / V * 100),
    // an overdamped response creeps up to V: its largest value is at the end, not a peak
    peakTime: peak > V ? peakTime : null,
    riseTime: t10 !== null && t90 !== null ? t90 - t10 : null,
    // null: still outside the band at the end of the run
    settlingTime: Math.abs(v - V) > band ? null : lastOutside
  }
}

/** When the rising response passed `level` in (t − dt, t], or null if it did not. */
function crossing (before, after, level, t, dt) {
  if (before >= level || after < level) return null
  return t - dt + dt * (level - before) / (after - before)
}

export async function run (shard, ctx) {
  if (shard.kind !== 'grid') throw badInput(`rlc-step.mjs runs grid shards (shards.grid), not ${shard.kind} shards`)
  const params = {
    stepVoltage: positive(ctx.params, 'stepVoltage', 'params'),
    settlingBand: positive(ctx.params, 'settlingBand', 'params'),
    stepsPerTimeConstant: positive(ctx.params, 'stepsPerTimeConstant', 'params'),
    maxSteps: positive(ctx.params, 'maxSteps', 'params')
  }
  const rows = []
  for (const point of shard.points) {
    const circuit = {
      resistance: positive(point, 'resistance', 'grid'),
      inductance: positive(point, 'inductance', 'grid'),
      capacitance: positive(point, 'capacitance', 'grid')
    }
    rows.push({ ...circuit, ...simulate(circuit, params) })
    ctx.progress(rows.length / shard.points.length)
    // the abort arrives through this thread's event loop: let it turn between points, then look
    await new Promise((resolve) => setImmediate(resolve))
    if (ctx.signal.aborted) throw new Error('cancelled')
  }
  return rows
}
