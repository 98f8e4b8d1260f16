import { availableParallelism } from 'node:os'
import { ShardPlan } from '../../actors/coordinator/plan.ts'
import { missing } from '../../actors/coordinator/match.ts'
import { ENGINES, type Burst } from '../../protocols/bridge/schema.ts'
import { describeError } from '../../protocols/common/errors.ts'
import type { ApiClient } from '../api/client.ts'
import type { PeerJson } from '../api/routes.ts'
import { burstNodes, estimate, needsAccelerator, shardTime, type Estimate, type MeshSlots, type ShardSample, type ShardTime } from '../campaign/cost.ts'
import { loadCampaignFile, type LoadedCampaign } from '../campaign/load.ts'
import { loadPrices, PricesError, type Prices } from '../campaign/prices.ts'
import { duration, type SubmitExtras } from './campaigns.ts'
import { UsageError } from './errors.ts'

/**
 * `zp submit FILE --dry-run`: the file checked as the node would check it, a
 * few shards run here to time them, and what the whole campaign would take
 * (core-hours, GPU-hours, when it would end with and without its burst) and,
 * with `--prices`, cost. `zp submit --prices` does the same before a real
 * submit, holds the burst to its maxCost and stamps the estimate into it.
 */

export interface CostFlags {
  calibrate?: number
  prices?: string
  execConfig?: string
  json?: boolean
}

const DEFAULT_CALIBRATE = 3
const PEERS_TIMEOUT_MS = 5_000

interface Prepared {
  loaded: LoadedCampaign
  shards: number
  items: number
  burst?: Burst
  prices?: Prices
  samples: ShardSample[]
  time: ShardTime
  mesh: { from: string, peers: number, slots: MeshSlots[] }
  estimate: Estimate
  assumptions: string[]
}

/** The mesh as `GET /v1/peers` lists it; a string says why there is none to ask. */
type PeersSource = () => Promise<PeerJson[] | string>

export async function dryRun (file: string, extras: SubmitExtras, flags: CostFlags, client: () => Promise<ApiClient>): Promise<void> {
  const p = await prepare(file, extras, flags, async () => {
    try {
      return await peersOf(await client())
    } catch (err) {
      return describeError(err)
    }
  })
  const over = overMaxCost(p)
  if (flags.json === true) process.stdout.write(JSON.stringify(toJson(p), null, 2) + '\n')
  else process.stdout.write(report(p))
  // the node would refuse it: say so in the exit code too (nothing was submitted either way)
  if (over != null) process.exitCode = 2
}

/**
 * Before a real submit with `--prices`: estimate, print on stderr, refuse a
 * burst above its maxCost (nothing is sent), else add the estimate to the
 * submit's burst, which the node merges over the file's.
 */
export async function withCostEstimate (file: string, extras: SubmitExtras, flags: CostFlags & { prices: string }, api: ApiClient): Promise<SubmitExtras> {
  const p = await prepare(file, extras, flags, async () => await peersOf(api).catch((err: unknown) => describeError(err)))
  process.stderr.write(report(p))
  const over = overMaxCost(p)
  if (over != null) throw new UsageError(`${over}; nothing was submitted: raise maxCost (--max-cost), burst fewer nodes, or check the prices in ${flags.prices}`)
  const stamp = p.estimate.burstEstimate
  return stamp != null ? { ...extras, burst: { ...extras.burst, estimate: stamp } } : extras
}

async function peersOf (api: ApiClient): Promise<PeerJson[]> {
  return await api.get<PeerJson[]>('/v1/peers', { timeoutMs: PEERS_TIMEOUT_MS })
}

function overMaxCost (p: Prepared): string | undefined {
  const max = p.burst?.maxCost
  const est = p.estimate.burstEstimate
  if (max == null || est == null || est.cost <= max) return undefined
  return `the burst's estimated cost ${money(est.cost)} ${est.currency} exceeds its maxCost ${max}`
}

async function prepare (file: string, extras: SubmitExtras, flags: CostFlags, peers: PeersSource): Promise<Prepared> {
  const extra = extras.burst
  // the price table first: a typo in it should not cost a calibration
  let prices: Prices | undefined
  try {
    prices = flags.prices != null ? await loadPrices(flags.prices) : undefined
  } catch (err) {
    if (err instanceof PricesError) throw new UsageError(err.message)
    throw err
  }
  const loaded = await loadCampaignFile(file, { params: extras.params })
  // as the node merges `zp submit --burst` over the file's burst
  const burst = loaded.spec.burst != null || extra != null ? { ...loaded.spec.burst, ...extra } : undefined
  if (burst?.maxCost != null && !ENGINES.some(e => burst[e] != null)) {
    throw new UsageError(`maxCost ${burst.maxCost} limits what a burst costs, and this campaign has no burst: add --burst (e.g. k8s:4@IMAGE) or a burst: in the file, or drop maxCost`)
  }
  const plan = new ShardPlan(loaded.sharding, { rows: loaded.data?.rows, offsets: loaded.data?.offsets })
  const perShard = loaded.sharding.perShard
  const count = flags.calibrate ?? DEFAULT_CALIBRATE
  const kind = loaded.spec.workload.kind
  process.stderr.write(`zp: calibrating ${loaded.spec.name}: running ${Math.min(count, plan.count)} of its ${plan.count} shards here, one at a time (${kind} workload)\n`)
  const { calibrate } = await import('./calibrate.ts')
  // Ctrl-C stops the shard running here (its worker thread or child goes with it), not just this process
  const stop = new AbortController()
  const interrupt = (): void => { stop.abort(new Error('interrupted (SIGINT)')) }
  process.once('SIGINT', interrupt)
  let samples: ShardSample[]
  try {
    samples = await calibrate(loaded, {
      count,
      ...(flags.execConfig != null ? { execConfig: flags.execConfig } : {}),
      signal: stop.signal,
      onShard: ({ index, n, of, sample }) => {
        process.stderr.write(sample == null
          ? `zp:   shard ${index} (${n}/${of}) …\n`
          : `zp:   shard ${index} (${n}/${of}): ${seconds(sample.wallMs)} wall, ${seconds(sample.cpuMs)} CPU\n`)
      }
    })
  } finally {
    process.off('SIGINT', interrupt)
  }
  const time = shardTime(samples, perShard)
  const mesh = meshSlots(await peers(), loaded)
  const nodes = burstNodes(burst)
  const gpusPerShard = needsAccelerator(loaded.requires.capabilities) ? 1 : 0
  const est = estimate({ shards: plan.count, fullShards: plan.items / perShard, time, gpusPerShard, mesh: mesh.slots, burst: nodes, ...(prices != null ? { prices } : {}) })
  const assumptions = [
    `every slot, the mesh's and the burst's, runs a shard as fast as this machine did, in waves of equal shards; leasing, blob transfer and a burst's start-up are not counted`,
    `a shard holds ${time.cores === 1 ? 'its work slot\'s core' : `${time.cores} cores`} for its wall time: CPU ÷ wall rounded, at least 1 (a shard that waits holds its core all the same; a multi-threaded one holds more)`,
    mesh.from,
    samples.length > 1
      ? 'the first shard here also started the runner (a worker thread, the module\'s import, an ONNX session): it is left out of the time per shard, and its excess is counted once per slot'
      : 'one shard was timed, start-up included: with --calibrate 2 or more, the start-up is told apart',
    ...gpusPerShard > 0 ? ['it requires an accelerator: each shard holds one for its wall time; it was timed on this machine, where it ran without one if this machine has none'] : [],
    ...nodes.length > 0 ? ['a burst\'s nodes are paid for, busy or not, from the campaign\'s start to its end plus their idle timeout (the campaign\'s end may release them sooner: this errs high)'] : [],
    ...burst?.dask != null ? ['a Dask burst starts a node on every worker of the cluster, which the file does not say: it is counted as one worker'] : [],
    ...burst?.maxCost != null && prices == null ? [`maxCost ${burst.maxCost} is not checked without --prices (the node refuses a burst with a maxCost and no estimate)`] : []
  ]
  return { loaded, shards: plan.count, items: plan.items, ...(burst != null ? { burst } : {}), ...(prices != null ? { prices } : {}), samples, time, mesh, estimate: est, assumptions }
}

/** The free slots of the peers that can run the campaign now; without a node to ask, this machine's cores. */
function meshSlots (peers: PeerJson[] | string, loaded: LoadedCampaign): Prepared['mesh'] {
  if (typeof peers === 'string') {
    const cores = availableParallelism()
    return {
      from: `no node to ask for the mesh's slots (${peers}): assumes this machine's ${cores} cores as the only slots besides the burst's`,
      peers: 0,
      slots: [{ name: 'this machine', slots: cores, labels: {} }]
    }
  }
  // the coordinator's own test (missing() reads the peer's capabilities, which the API lists as they are)
  const able = peers.filter(p => p.state === 'alive' && p.slots.total > 0 && missing({ ...p, capsHash: '', seq: 0, left: false }, loaded.requires).length === 0)
  const slots = able.filter(p => p.slots.free > 0).map(p => ({ name: p.name, slots: p.slots.free, labels: p.labels }))
  return { from: `the mesh: the free slots now of the ${able.length} of ${peers.length} peers that can run it (busy slots are not waited for)`, peers: able.length, slots }
}

function report (p: Prepared): string {
  const { loaded, estimate: e, time } = p
  const s = loaded.sharding
  const n = (count: number, what: string): string => `${sig(count)} ${what}${count === 1 ? '' : 's'}`
  /** a heading, or a label and its text */
  const rows: Array<string | [string, string]> = [
    `${loaded.spec.name}: ${loaded.spec.workload.kind} workload, ${p.shards.toLocaleString('en')} shards (${p.items.toLocaleString('en')} ${s.kind === 'rows' ? 'rows' : s.kind === 'grid' ? 'grid points' : 'iterations'}, ${s.perShard.toLocaleString('en')} per shard)`,
    `calibration: ${n(p.samples.length, 'shard')} run here (${p.samples.map(x => x.index).join(', ')})`,
    ['per shard', `${seconds(time.meanMs)} wall (± ${seconds(time.stdevMs)}, ${seconds(time.minMs)} to ${seconds(time.maxMs)}${p.samples.length > 1 ? ', all but the first' : ''}), ${seconds(time.cpuMs)} CPU: ${n(time.cores, 'core')} held`],
    ...p.samples.length > 1 ? [['start-up', `${seconds(time.startupMs)} (the first shard's time beyond the rest: starting the runner, once per slot)`] as [string, string]] : [],
    ['core-hours', `${sig(e.coreHours)} (${sig(p.items / s.perShard)} shards × ${sig(time.coreSeconds)} core-seconds${e.startupSlots > 0 && time.startupMs > 0 ? ` + start-up on ${n(e.startupSlots, 'slot')}` : ''})`],
    ['GPU-hours', e.gpuHours > 0 ? sig(e.gpuHours) : `0 (it requires no accelerator)${e.burst.some(b => b.gpus > 0) ? '; the burst\'s GPUs are below' : ''}`],
    'finish',
    ['mesh', `${n(e.finish.mesh.slots, 'free slot')} (${p.mesh.peers > 0 ? `on ${n(p.mesh.peers, 'peer')}` : p.mesh.slots.map(m => m.name).join(', ') || 'no peer can run it'}): ${when(e.finish.mesh.seconds)}`]
  ]
  if (e.finish.withBurst != null) {
    const added = e.burst.map(b => `${b.engine}: ${n(b.nodes, 'node')} × ${n(e.placement.find(x => x.where === `burst ${b.engine}`)!.slots / b.nodes, 'slot')}`).join(', ')
    rows.push(['with burst', `${n(e.finish.withBurst.slots, 'slot')} (+ ${added}): ${when(e.finish.withBurst.seconds)}`])
  }
  for (const b of e.burst) {
    rows.push([`burst ${b.engine}`, `${b.nodes} × (${n(b.cores, 'core')}${b.gpus > 0 ? ` + ${n(b.gpus, 'GPU')}` : ''}) for ${sig(b.hours)} h: ${sig(b.coreHours)} core-hours${b.gpuHours > 0 ? `, ${sig(b.gpuHours)} GPU-hours` : ''}`])
  }
  if (e.cost != null) {
    rows.push(`cost (${e.cost.currency})`)
    for (const m of e.placement.filter(x => x.cost != null)) rows.push([m.where, `${money(m.cost!)} (${sig(m.shards)} shards, ${sig(m.coreHours)} core-hours at ${m.rate})`])
    for (const b of e.burst) rows.push([`burst ${b.engine}`, `${money(b.cost!)} (its nodes for the whole time, busy or not, at ${b.rate})`])
    rows.push(['total', money(e.cost.total)])
    const max = p.burst?.maxCost
    if (max != null) rows.push(['maxCost', `${max} ${e.cost.currency}: ${e.cost.burst > max ? 'the burst EXCEEDS it; the submit would be refused' : 'the burst is within it'}`])
  }
  const width = Math.max(...rows.map(r => typeof r === 'string' ? 0 : r[0].length)) + 2
  const out = rows.map(r => typeof r === 'string' ? r : `  ${r[0].padEnd(width)}${r[1]}`)
  out.push('assumes:', ...p.assumptions.map(a => `  - ${a}`))
  return out.join('\n') + '\n'
}

function toJson (p: Prepared): unknown {
  const { loaded, estimate: e } = p
  return {
    campaign: { name: loaded.spec.name, kind: loaded.spec.workload.kind, shards: p.shards, items: p.items, sharding: loaded.sharding.kind, perShard: loaded.sharding.perShard },
    calibration: { shards: p.samples, perShard: p.time },
    coreSeconds: e.coreHours * 3600,
    ...e,
    mesh: { peers: p.mesh.peers, slots: p.mesh.slots },
    ...(p.burst?.maxCost != null ? { maxCost: p.burst.maxCost } : {}),
    assumptions: p.assumptions
  }
}

function seconds (ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : duration(ms)
}

function when (s: number | null): string {
  return s == null ? 'never: no slot can run it' : `about ${duration(s * 1000)}`
}

/** three significant digits, without an exponent for the sizes printed here */
function sig (n: number): string {
  return n === 0 ? '0' : String(Number(n.toPrecision(3)))
}

function money (n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : sig(n)
}
