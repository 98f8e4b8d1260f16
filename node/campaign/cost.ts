import { DEFAULT_IDLE_MS } from '../../bootstrap/bridge/registry.ts'
import { ENGINES, type Burst, type BurstEstimate, type Engine, type Labels } from '../../protocols/bridge/schema.ts'
import { engineRate, nodeRate, type Prices } from './prices.ts'

/**
 * The arithmetic of `zp submit --dry-run` and of a burst's cost estimate,
 * from shard times measured on this machine. Pure: the CLI measures, asks
 * the mesh for its slots, and prints.
 *
 * What it assumes, stated where it is printed too: every slot (the mesh's and
 * the burst's) runs a shard as fast as this machine did; a shard holds its
 * slot's core for its wall time, or as many whole cores as it kept busy
 * (onnxruntime's threads, an OpenMP program); shards run in waves of equal
 * length; leasing, blob transfer and a burst's queueing are not counted.
 */

/** One calibration shard as measured. */
export interface ShardSample {
  index: number
  /** rows, iterations or grid points it covered */
  items: number
  wallMs: number
  /** CPU time of the process running it, and of the children it waited for, while it ran */
  cpuMs: number
}

/** Per full shard (perShard items): wall time and what it costs in cores. */
export interface ShardTime {
  /** the samples the mean is over (all but the first, when there are two or more) */
  samples: number
  meanMs: number
  /** sample standard deviation (0 for one sample) */
  stdevMs: number
  minMs: number
  maxMs: number
  cpuMs: number
  /**
   * whole cores a shard holds: CPU ÷ wall rounded, at least 1. A shard that
   * waits holds its slot's core all the same; the runtime's own threads (the
   * JIT compiler, the garbage collector) add a tenth or so to a single-threaded
   * shard, which is not a second core; onnxruntime's or OpenMP's threads are.
   */
  cores: number
  /** wall seconds × cores */
  coreSeconds: number
  /** what the first shard took beyond the others: starting the runner, which a worker does once per slot */
  startupMs: number
}

/** Where calibration shards come from: `k` indexes spread evenly over the full shards (the last one may be partial), the same every time. */
export function calibrationIndexes (shards: number, fullShards: number, k: number): number[] {
  const range = fullShards > 0 ? fullShards : shards
  if (range <= 0 || k <= 0) return []
  if (k >= range) return Array.from({ length: range }, (_, i) => i)
  if (k === 1) return [Math.floor((range - 1) / 2)]
  return [...new Set(Array.from({ length: k }, (_, i) => Math.round(i * (range - 1) / (k - 1))))]
}

/**
 * Mean and spread of the samples, each scaled to a full shard of `perShard`
 * items. The first shard on a fresh runner also started it (a worker thread
 * and the module's import, an ONNX session), which a mesh worker does once
 * per slot and reuses: with two samples or more, the first is left out of
 * the mean and its excess over it is the start-up.
 */
export function shardTime (samples: readonly ShardSample[], perShard: number): ShardTime {
  if (samples.length === 0) throw new Error('no calibration shard was measured')
  const scaled = samples.map(s => ({ wall: s.wallMs * perShard / s.items, cpu: s.cpuMs * perShard / s.items }))
  const steady = scaled.length > 1 ? scaled.slice(1) : scaled
  const wall = steady.map(s => s.wall)
  const meanMs = sum(wall) / wall.length
  const stdevMs = wall.length > 1 ? Math.sqrt(sum(wall.map(w => (w - meanMs) ** 2)) / (wall.length - 1)) : 0
  const cpu = sum(steady.map(s => s.cpu))
  const cores = Math.max(1, Math.round(cpu / sum(wall)))
  const startupMs = scaled.length > 1 ? Math.max(0, scaled[0]!.wall - meanMs) : 0
  return { samples: steady.length, meanMs, stdevMs, minMs: Math.min(...wall), maxMs: Math.max(...wall), cpuMs: cpu / steady.length, cores, coreSeconds: meanMs / 1000 * cores, startupMs }
}

/** Work slots of the mesh's own nodes that can run the campaign (free now), as `GET /v1/peers` lists them. */
export interface MeshSlots {
  name: string
  slots: number
  labels: Labels
}

/** What a burst brings up on one engine. */
export interface BurstNodes {
  engine: Engine
  nodes: number
  /** cores each node is given (what is paid for), and the work slots it offers */
  cores: number
  slots: number
  gpus: number
  /** how long a node waits without work before it leaves (0: it stays until the campaign's end releases it) */
  idleMs: number
}

/**
 * The burst's nodes as its options ask for them. A Dask burst starts a node
 * on each worker the cluster has, which the spec does not say: it is counted
 * as one (the caller says so).
 */
export function burstNodes (burst: Burst | undefined): BurstNodes[] {
  if (burst == null) return []
  const idle = (ms: number | undefined): number => ms ?? DEFAULT_IDLE_MS
  return ENGINES.flatMap((engine): BurstNodes[] => {
    switch (engine) {
      case 'slurm': {
        const o = burst.slurm
        if (o == null) return []
        const cores = o.cpusPerTask ?? 1
        return [{ engine, nodes: o.nodes, cores, slots: cores, gpus: gresGpus(o.gres), idleMs: idle(o.idleMs) }]
      }
      case 'ray': {
        const o = burst.ray
        if (o == null) return []
        const cores = o.numCpus ?? 1
        return [{ engine, nodes: o.nodes, cores, slots: Math.max(1, Math.ceil(cores)), gpus: o.numGpus ?? 0, idleMs: idle(o.idleMs) }]
      }
      case 'k8s': {
        const o = burst.k8s
        if (o == null) return []
        const cores = o.cpu != null ? cpuQuantity(o.cpu) : 1
        return [{ engine, nodes: o.nodes, cores, slots: Math.max(1, Math.ceil(cores)), gpus: o.gpus ?? 0, idleMs: idle(o.idleMs) }]
      }
      case 'dask': {
        const o = burst.dask
        if (o == null) return []
        const slots = o.perWorker ?? 1
        // a Dask node stays with its worker unless told to leave when idle
        return [{ engine, nodes: 1, cores: slots, slots, gpus: 0, idleMs: o.idleMs ?? 0 }]
      }
    }
  })
}

/** GPUs in a Slurm generic resource list: gpu:2, gpu:a100:2, gpu (one) */
export function gresGpus (gres: string | undefined): number {
  if (gres == null) return 0
  let gpus = 0
  for (const item of gres.split(',')) {
    const parts = item.split(':')
    if (parts[0] !== 'gpu') continue
    const last = parts.length > 1 ? Number(parts.at(-1)) : 1
    gpus += Number.isInteger(last) ? last : 1
  }
  return gpus
}

/** A Kubernetes CPU quantity in cores: 500m → 0.5, 2 → 2 */
export function cpuQuantity (q: string): number {
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q)
}

/** Capability keys that need an accelerator (a GPU, an NPU, an FPGA, a non-CPU ONNX execution provider). */
export function needsAccelerator (capabilities: readonly string[]): boolean {
  return capabilities.some(k => /^(gpu|npu|fpga)\./.test(k) || (k.startsWith('onnx.ep.') && k !== 'onnx.ep.cpu'))
}

export interface EstimateInput {
  shards: number
  /** the campaign's items ÷ perShard: its work in full shards */
  fullShards: number
  time: ShardTime
  /** accelerators each shard holds: 1 when the campaign requires one */
  gpusPerShard: number
  mesh: MeshSlots[]
  burst: BurstNodes[]
  prices?: Prices
}

/** When the campaign would end on `slots` slots; null when there is none. */
export interface Finish {
  slots: number
  seconds: number | null
}

/** A share of the work by where it runs (each slot takes as many shards as any other). */
export interface Placement {
  where: string
  slots: number
  shards: number
  coreHours: number
  gpuHours: number
  /** the mesh's own nodes only: a burst is paid for whole, below */
  cost?: number
  rate?: string
}

/** A burst engine's nodes, paid for from the campaign's start until it ends plus their idle timeout. */
export interface BurstCost {
  engine: Engine
  nodes: number
  cores: number
  gpus: number
  hours: number
  coreHours: number
  gpuHours: number
  cost?: number
  rate?: string
}

export interface Estimate {
  /** the campaign's work: full shards × core-seconds per shard, plus each slot's start-up */
  coreHours: number
  gpuHours: number
  /** slots that start a runner: as many as get a shard */
  startupSlots: number
  finish: { mesh: Finish, withBurst?: Finish }
  placement: Placement[]
  burst: BurstCost[]
  cost?: { currency: string, mesh: number, burst: number, total: number }
  /** what `zp submit` stamps into burst.estimate; with a burst and prices only */
  burstEstimate?: BurstEstimate
}

/** Each slot starts its runner once, then shards run in waves, one per slot, each as long as the mean shard. */
export function finishSeconds (shards: number, slots: number, time: Pick<ShardTime, 'meanMs' | 'startupMs'>): number | null {
  if (slots <= 0) return null
  return (time.startupMs + Math.ceil(shards / slots) * time.meanMs) / 1000
}

export function estimate (input: EstimateInput): Estimate {
  const { time, prices } = input
  const meshSlots = sum(input.mesh.map(m => m.slots))
  const burstSlots = sum(input.burst.map(b => b.nodes * b.slots))
  const mesh: Finish = { slots: meshSlots, seconds: finishSeconds(input.shards, meshSlots, time) }
  const withBurst: Finish | undefined = input.burst.length > 0
    ? { slots: meshSlots + burstSlots, seconds: finishSeconds(input.shards, meshSlots + burstSlots, time) }
    : undefined
  const slots = withBurst?.slots ?? meshSlots
  // every slot that gets a shard starts its runner once
  const startupSlots = Math.min(input.shards, slots)
  const startupSeconds = startupSlots * time.startupMs / 1000
  const coreHours = (input.fullShards * time.coreSeconds + startupSeconds) / 3600
  const gpuHours = (input.fullShards * time.meanMs / 1000 + startupSeconds) * input.gpusPerShard / 3600

  const share = (groupSlots: number): { shards: number, coreHours: number, gpuHours: number } => {
    const f = slots > 0 ? groupSlots / slots : 0
    return { shards: input.fullShards * f, coreHours: coreHours * f, gpuHours: gpuHours * f }
  }
  const placement: Placement[] = [
    ...input.mesh.map(m => {
      const part = share(m.slots)
      const rate = prices != null ? nodeRate(prices, m.labels) : undefined
      return { where: m.name, slots: m.slots, ...part, ...(rate != null ? { cost: part.coreHours * rate.coreHour + part.gpuHours * rate.gpuHour, rate: rate.source } : {}) }
    }),
    ...input.burst.map(b => ({ where: `burst ${b.engine}`, slots: b.nodes * b.slots, ...share(b.nodes * b.slots) }))
  ]

  const burst: BurstCost[] = input.burst.map(b => {
    // nodes are up from the start to the end, then wait out their idle timeout (the campaign's end may release them sooner)
    const hours = ((withBurst?.seconds ?? 0) + b.idleMs / 1000) / 3600
    const cost = { engine: b.engine, nodes: b.nodes, cores: b.cores, gpus: b.gpus, hours, coreHours: b.nodes * b.cores * hours, gpuHours: b.nodes * b.gpus * hours }
    const rate = prices != null ? engineRate(prices, b.engine) : undefined
    return rate != null ? { ...cost, cost: cost.coreHours * rate.coreHour + cost.gpuHours * rate.gpuHour, rate: rate.source } : cost
  })

  const out: Estimate = { coreHours, gpuHours, startupSlots, finish: { mesh, ...(withBurst != null ? { withBurst } : {}) }, placement, burst }
  if (prices == null) return out
  const meshCost = sum(placement.map(p => p.cost ?? 0))
  const burstCost = sum(burst.map(b => b.cost ?? 0))
  out.cost = { currency: prices.currency, mesh: meshCost, burst: burstCost, total: meshCost + burstCost }
  if (burst.length > 0) {
    out.burstEstimate = {
      cost: burstCost,
      currency: prices.currency,
      coreHours: sum(burst.map(b => b.coreHours)),
      gpuHours: sum(burst.map(b => b.gpuHours)),
      hours: Math.max(...burst.map(b => b.hours))
    }
  }
  return out
}

function sum (xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0)
}
