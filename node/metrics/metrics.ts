import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { HostMetrics } from '../../actors/runtime/host.ts'
import type { WorkerMetrics } from '../../actors/worker/worker.ts'
import type { CoordinatorGauges } from '../../actors/coordinator/coordinator.ts'
import type { CoordinatorMetrics } from '../../actors/coordinator/session.ts'
import type { BlobMetrics } from '../blobs/service.ts'
import type { Load } from '../../protocols/membership/schema.ts'

/** What the node reads on each scrape (gauges of state it already holds). */
export interface ScrapeSources {
  peers: () => Promise<Array<{ state: string }>>
  blobStore: () => { blobs: number, bytes: number }
  mailboxes: () => Array<{ name: string, depth: number }>
  /** the campaigns this node coordinates now: shard counts by state, and how far each replica is behind */
  campaigns: () => Promise<CoordinatorGauges[]>
  /** this machine's latest hardware load sample (null before the first, or with sampling off) */
  load: () => Load | null
}

const PEER_STATES = ['alive', 'suspect', 'dead', 'draining']
/** a slow scrape source (an actor busy for seconds) leaves its gauges empty for that scrape rather than stalling it */
const SOURCE_TIMEOUT_MS = 5000
const SECONDS_SHORT = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const SECONDS_LONG = [0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]

/**
 * prom-client's process_/nodejs_ metrics, once per process: they describe the
 * process, and each collector keeps an event-loop monitor and a GC observer
 * running for good, which one per node would pile up in tests that start many.
 */
let processRegistry: Registry | undefined
function processMetrics (): Registry {
  if (processRegistry == null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/**
 * One node's Prometheus metrics, on a registry of its own (tests run several
 * nodes in one process), with the process's metrics in front: counters and
 * histograms the actors feed through small ports, and gauges read on scrape.
 */
export class NodeMetrics {
  readonly registry = new Registry()
  readonly host: HostMetrics
  readonly blobs: BlobMetrics
  readonly worker: WorkerMetrics
  readonly coordinator: CoordinatorMetrics
  readonly #heartbeats: Counter<'direction'>
  #sources: ScrapeSources | undefined

  constructor () {
    const registers = [this.registry]
    const errors = new Counter({ name: 'zp_errors_total', help: 'Failures by code: actor statuses of failed asks (timeout, peer_unreachable, …), shard_failed, shard_timeout', labelNames: ['code'], registers })
    this.#heartbeats = new Counter({ name: 'zp_heartbeats_total', help: 'Membership heartbeats published (sent) and heard from peers (received)', labelNames: ['direction'], registers })
    const asks = new Histogram({ name: 'zp_ask_duration_seconds', help: 'Time from an actor ask to its answer or failure, by target actor', labelNames: ['actor', 'outcome'], buckets: SECONDS_SHORT, registers })
    this.host = {
      asked: (actor, seconds, status) => {
        asks.observe({ actor, outcome: status === 'ok' ? 'ok' : 'error' }, seconds)
        if (status !== 'ok') errors.inc({ code: status })
      }
    }
    const fetches = new Histogram({ name: 'zp_blob_fetch_duration_seconds', help: 'Time to fetch a blob from a peer into the store', labelNames: ['outcome'], buckets: SECONDS_LONG, registers })
    const fetched = new Counter({ name: 'zp_blob_fetched_bytes_total', help: 'Bytes of blobs fetched from peers', registers })
    this.blobs = {
      fetched: (seconds, bytes) => {
        fetches.observe({ outcome: bytes != null ? 'ok' : 'error' }, seconds)
        if (bytes != null) fetched.inc(bytes)
      }
    }
    const shards = new Counter({ name: 'zp_shards_completed_total', help: 'Shards this node ran to an end, by campaign, workload kind and outcome (ok, failed, cancelled, released)', labelNames: ['campaign', 'kind', 'outcome'], registers })
    const durations = new Histogram({ name: 'zp_shard_duration_seconds', help: 'Run time of a shard on this node, by workload kind and outcome', labelNames: ['kind', 'outcome'], buckets: SECONDS_LONG, registers })
    const resultRows = new Counter({ name: 'zp_result_rows_total', help: 'Result rows this node produced, by workload kind', labelNames: ['kind'], registers })
    this.worker = {
      shardEnded: (e) => {
        shards.inc({ campaign: e.campaign, kind: e.kind, outcome: e.outcome })
        durations.observe({ kind: e.kind, outcome: e.outcome }, e.seconds)
        if (e.resultRows != null) resultRows.inc({ kind: e.kind }, e.resultRows)
        if (e.outcome === 'failed') errors.inc({ code: e.timedOut === true ? 'shard_timeout' : 'shard_failed' })
      }
    }
    const leases = new Counter({ name: 'zp_leases_total', help: 'Shard leases this coordinator granted, and leases that ended without an attempt counted (requeued)', labelNames: ['campaign', 'event'], registers })
    this.coordinator = { leases: (campaign, event, count) => { leases.inc({ campaign, event }, count) } }
    this.#scrapeGauges(registers)
  }

  /** Counts a heartbeat published or heard. */
  heartbeat (direction: 'sent' | 'received'): void {
    this.#heartbeats.inc({ direction })
  }

  /** Where the scrape-time gauges read from (the node, once its parts run). */
  setSources (sources: ScrapeSources): void {
    this.#sources = sources
  }

  get contentType (): string {
    return this.registry.contentType
  }

  async text (): Promise<string> {
    const [own, proc] = await Promise.all([this.registry.metrics(), processMetrics().metrics()])
    return proc + own
  }

  #scrapeGauges (registers: Registry[]): void {
    const src = (): ScrapeSources | undefined => this.#sources
    new Gauge({
      name: 'zp_peers', help: 'Peers in this node\'s membership table (itself included), by state', labelNames: ['state'], registers,
      async collect () {
        const peers = await bounded(src()?.peers())
        if (peers == null) return
        this.reset()
        for (const state of PEER_STATES) this.set({ state }, 0)
        for (const p of peers) this.inc({ state: p.state })
      }
    })
    new Gauge({
      name: 'zp_blob_store_bytes', help: 'Bytes of blobs held in this node\'s store', registers,
      collect () { const u = src()?.blobStore(); if (u != null) this.set(u.bytes) }
    })
    new Gauge({
      name: 'zp_blob_store_blobs', help: 'Blobs held in this node\'s store', registers,
      collect () { const u = src()?.blobStore(); if (u != null) this.set(u.blobs) }
    })
    new Gauge({
      name: 'zp_actor_mailbox_depth', help: 'Messages waiting in each actor\'s mailbox', labelNames: ['actor'], registers,
      collect () {
        const boxes = src()?.mailboxes()
        if (boxes == null) return
        this.reset()
        for (const b of boxes) this.set({ actor: b.name }, b.depth)
      }
    })
    loadGauges(registers, () => src()?.load() ?? null)
    // one read of the coordinator feeds both gauges of a scrape
    let campaigns: Promise<CoordinatorGauges[] | undefined> | undefined
    const read = async (): Promise<CoordinatorGauges[] | undefined> => {
      campaigns ??= bounded(src()?.campaigns()).finally(() => { setImmediate(() => { campaigns = undefined }) })
      return await campaigns
    }
    new Gauge({
      name: 'zp_shards', help: 'Shards of the campaigns this node coordinates, by campaign and state', labelNames: ['campaign', 'state'], registers,
      async collect () {
        const list = await read()
        if (list == null) return
        this.reset()
        for (const c of list) for (const [state, n] of Object.entries(c.shards)) this.set({ campaign: c.id, state }, n)
      }
    })
    new Gauge({
      name: 'zp_replication_lag', help: 'Changes of a campaign that a replica has not confirmed yet (seq behind the coordinator)', labelNames: ['campaign', 'replica'], registers,
      async collect () {
        const list = await read()
        if (list == null) return
        this.reset()
        for (const c of list) for (const r of c.replicas) this.set({ campaign: c.id, replica: r.peer }, r.behind)
      }
    })
  }
}

/** The hardware load the node samples for its heartbeats (node/probe/utilisation.ts), as gauges. */
function loadGauges (registers: Registry[], load: () => Load | null): void {
  const machine = (name: string, help: string, pick: (l: Load) => number): void => {
    new Gauge({ name, help, registers, collect () { const l = load(); if (l != null) this.set(pick(l)) } })
  }
  machine('zp_node_cpu_utilisation', 'Busy share of all CPU cores of this machine since the previous sample (0..1)', l => l.cpu)
  machine('zp_node_memory_used_bytes', 'Memory of this machine in use (total minus available)', l => l.memUsed)
  machine('zp_node_memory_total_bytes', 'Memory of this machine', l => l.memTotal)
  const gpu = (name: string, help: string, pick: (g: Load['gpus'][number]) => number | null): void => {
    new Gauge({
      name, help, labelNames: ['gpu'], registers,
      collect () {
        const l = load()
        if (l == null) return
        this.reset()
        l.gpus.forEach((g, i) => { const v = pick(g); if (v != null) this.set({ gpu: String(i) }, v) })
      }
    })
  }
  gpu('zp_gpu_utilisation', 'Utilisation of each GPU of this machine (0..1; nvidia-smi or rocm-smi)', g => g.util)
  gpu('zp_gpu_memory_used_bytes', 'Memory in use on each GPU of this machine', g => g.memUsed)
  gpu('zp_gpu_memory_total_bytes', 'Memory of each GPU of this machine', g => g.memTotal)
}

async function bounded<T> (work: Promise<T> | undefined): Promise<T | undefined> {
  if (work == null) return undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<undefined>(resolve => { timer = setTimeout(() => { resolve(undefined) }, SOURCE_TIMEOUT_MS) })
  try {
    return await Promise.race([work.catch(() => undefined), late])
  } finally {
    clearTimeout(timer)
  }
}
