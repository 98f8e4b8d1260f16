import type { Logger } from 'pino'
import { describeError } from '../runtime/errors.ts'
import type { ActorContext, ActorDefinition, Behavior, Later, MessageMeta } from '../runtime/types.ts'
import type { PeerView } from '../membership/membership.ts'
import {
  CoordinatorRequestSchema, DETACHED_WORKER, DETACHED_WORKER_NAME, WORKER_QUEUE_FACTOR,
  type CoordinatorRequest, type ResultAck, type WorkerRequest
} from '../../protocols/campaign/messages.ts'
import type { ShardOutput } from '../../protocols/campaign/shard.ts'
import type { BlobRef, CampaignSpec } from '../../protocols/campaign/spec.ts'
import { assign } from './assign.ts'
import { appendMetrics, metricsOf } from './reports.ts'
import { onLeaseOutcome, sendLeases, workerRef, type LeaseOutcome, type LeasingIO } from './leasing.ts'
import type { SubmitCampaign } from './open.ts'
import { onCheckpoint, onRelease, onResult, type ResultIO } from './results.ts'
import { MAX_LEASES_PER_MESSAGE, type CampaignSession, type CoordinatorMetrics } from './session.ts'
import { Sessions } from './sessions.ts'
import { liveStatus } from './status.ts'
import type { CampaignStore } from './store.ts'

export { COORDINATOR_ACTOR } from '../../protocols/campaign/messages.ts'
export type { SubmitCampaign } from './open.ts'

/** What the coordinator needs from its node. */
export interface CoordinatorPorts {
  self: string
  selfName: string
  version: string
  store: CampaignStore
  runsDir: string
  peers: () => Promise<PeerView[]>
  blobs: {
    /** let `peer` fetch these blobs from this node, until `scope` (the campaign id) is revoked */
    grant: (scope: string, peer: string, hashes: string[]) => void
    revoke: (scope: string) => void
    /** the local file of a stored blob */
    path: (hash: string) => string
    /** fetch a blob another peer holds (a worker's large result) */
    fetch: (peer: string, ref: BlobRef, signal: AbortSignal) => Promise<Uint8Array>
    /** keep `bytes` for `peer` to fetch (a checkpoint snapshot for a replica) */
    offer: (peer: string, bytes: Uint8Array, name: string) => Promise<BlobRef>
  }
  /** replicas of a campaign whose spec does not say (default 2) */
  defaultReplicas?: number
  /** on the node's start, pick up the campaigns it coordinated when it stopped (default true); else mark them stopped */
  resume?: boolean
  /** told when a campaign starts running here (submitted, resumed, taken over) and when it has ended: burst capacity follows it */
  lifecycle?: {
    started: (id: string, spec: CampaignSpec) => void
    ended: (id: string, state: string) => void
  }
  /** counts leases for the node's Prometheus metrics */
  metrics?: CoordinatorMetrics
}

/** What `{ type: 'metrics' }` answers: the campaigns running here, for the gauges of a scrape. */
export interface CoordinatorGauges {
  id: string
  shards: Record<string, number>
  replicas: Array<{ peer: string, behind: number }>
}

type LocalMessage =
  | SubmitCampaign
  | { type: 'status', id: string }
  | { type: 'list' }
  | { type: 'metrics' }
  | { type: 'cancel', id: string }
  | { type: 'tick' }
  | { type: 'peers', peers: PeerView[] }
  | { type: 'peer-lost', peer: string, state: string }
  | LeaseOutcome
  /** resume a campaign whose coordinator stopped before it ended (zp resume) */
  | { type: 'resume', id: string }
  /** this node's replica won the election for a campaign whose coordinator died: run it from the replicated checkpoint */
  | { type: 'takeover', id: string, term: number, replicas: string[], previous: string }
  | { type: 'superseded', id: string, coordinator?: string, term: number }
  /** a worker's result whose rows were fetched (from a blob) outside the mailbox */
  | { type: 'result-fetched', result: Extract<CoordinatorRequest, { type: 'result' }>, from: string }
  /** what the detached actor (Slurm array tasks) reports for the shards leased to it: results, pending tasks kept alive, tasks lost */
  | { type: 'detached', report: Extract<CoordinatorRequest, { type: 'result' | 'progress' | 'release' }> }

export type CoordinatorMessage = CoordinatorRequest | LocalMessage

const TICK_MS = 500
/** shards a detached campaign leases at most per tick (each batch becomes sbatch arrays) */
const DETACHED_BATCH = 4096
const METRICS_EVERY_MS = 1000
const FETCH_OUTPUT_TIMEOUT_MS = 120_000
/** a fetched result is stored and confirmed by replicas within this (see DURABLE_TIMEOUT_MS), or its worker tries again */
const RESULT_FETCHED_TIMEOUT_MS = 30_000

/**
 * The coordinator of the campaigns submitted on this node: a router over one
 * CampaignSession per campaign. Scheduling is `assign` over the sessions and
 * the peers; a session owns everything of its campaign. Every time a behaviour
 * starts — the node's start, or a supervised restart after a crash — it picks
 * up every unfinished campaign from the store before it handles anything
 * else, exactly as a process restart does.
 */
export function coordinatorActor (ports: CoordinatorPorts): ActorDefinition<CoordinatorMessage> {
  let incarnations = 0
  return {
    // workers are not necessarily trusted by this node: what they send is checked against the leases granted
    access: 'public',
    schema: CoordinatorRequestSchema as never,
    mailboxSize: 8192,
    create: (ctx) => new Coordinator(ports, ctx, incarnations++ === 0 && ports.resume === false ? 'stop' : 'resume')
  }
}

class Coordinator implements Behavior<CoordinatorMessage> {
  readonly #ports: CoordinatorPorts
  readonly #ctx: ActorContext
  readonly #log: Logger
  readonly #sessions: Sessions
  /** workers that refused or failed a lease: left alone until then */
  readonly #busyUntil = new Map<string, number>()
  readonly #leasing: LeasingIO
  readonly #results: ResultIO
  readonly #ready: Promise<void>
  #peers: PeerView[] = []
  #lastMetrics = 0
  #refreshing = false

  constructor (ports: CoordinatorPorts, ctx: ActorContext, start: 'resume' | 'stop') {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    const tellSelf = (msg: LocalMessage): void => { void ctx.tell(ctx.self, msg).catch(() => {}) }
    this.#leasing = { self: ports.self, ctx, log: ctx.log, grant: ports.blobs.grant, metrics: ports.metrics }
    this.#sessions = new Sessions({
      self: ports.self,
      selfName: ports.selfName,
      version: ports.version,
      store: ports.store,
      ctx,
      log: ctx.log,
      peers: () => this.#peers,
      refreshPeers: async () => {
        this.#peers = await ports.peers().catch(() => this.#peers)
        return this.#peers
      },
      blobs: ports.blobs,
      blobPath: (hash) => ports.blobs.path(hash),
      runsDir: ports.runsDir,
      defaultReplicas: ports.defaultReplicas ?? 2,
      leasing: this.#leasing,
      tellWorker: (worker, msg) => { this.#tellWorker(worker, msg) },
      changed: () => { this.#schedule(ctx.now()) },
      superseded: (id, by) => { tellSelf({ type: 'superseded', id, ...by }) },
      leading: () => { tellSelf({ type: 'tick' }) },
      lifecycle: ports.lifecycle,
      metrics: ports.metrics
    })
    this.#results = {
      log: ctx.log,
      fetchOutput: async (worker, ref) => await this.#fetchOutput(worker, ref),
      fetched: async (result, from) => await ctx.ask<ResultAck>(ctx.self, { type: 'result-fetched', result, from } satisfies LocalMessage, { timeoutMs: RESULT_FETCHED_TIMEOUT_MS, signal: ctx.signal }),
      tellWorker: (worker, msg) => { this.#tellWorker(worker, msg) },
      changed: (session) => { this.#sessions.changed(session) }
    }
    ctx.timers.every(TICK_MS, { type: 'tick' })
    this.#ready = (start === 'resume' ? this.#sessions.resumeAll() : this.#sessions.stopAll()).catch((err: unknown) => {
      this.#log.error({ err: describeError(err) }, 'cannot read the campaigns this node coordinates')
    })
  }

  async stopped (): Promise<void> {
    await this.#ready
    await this.#sessions.closeAll()
  }

  async receive (msg: CoordinatorMessage, meta: MessageMeta): Promise<unknown> {
    // nothing is handled before the campaigns from the store are back: a result must find its campaign
    await this.#ready
    const now = this.#ctx.now()
    switch (msg.type) {
      case 'progress': this.#sessions.get(msg.campaignId)?.run.progress(msg.index, msg.epoch, meta.from, msg.fraction, now); return
      case 'result': return await this.#onResult(msg, meta.from, now)
      case 'release': { const s = this.#sessions.get(msg.campaignId); return s != null ? onRelease(s, msg, meta.from, this.#results) : { ok: false } }
      case 'checkpoint': { const s = this.#sessions.get(msg.campaignId); return s != null ? await onCheckpoint(s, msg, meta.from) : { ok: false } }
    }
    if (meta.from !== this.#ports.self) return undefined
    switch (msg.type) {
      case 'submit': return await this.#sessions.submit(msg, now)
      case 'status': return await this.#sessions.status(msg.id, now)
      case 'list': return await this.#sessions.list(now)
      case 'metrics': return [...this.#sessions.values()].map((s): CoordinatorGauges => {
        const { total: _, ...shards } = liveStatus(s.run, now, '', '').shards
        return { id: s.id, shards, replicas: s.group?.lag() ?? [] }
      })
      case 'cancel': return await this.#sessions.cancel(msg.id, now)
      case 'tick': this.#tick(now); return
      case 'peers': this.#peers = msg.peers; this.#schedule(now); return
      case 'peer-lost': this.#onPeerLost(msg.peer, msg.state, now); return
      case 'lease-reply': this.#onLeaseReply(msg, now); return
      case 'resume': return await this.#sessions.resume(msg.id, now)
      case 'takeover': return await this.#sessions.resume(msg.id, now, msg)
      case 'superseded': return await this.#sessions.superseded(msg.id, msg)
      case 'result-fetched': return await this.#onResult(msg.result, msg.from, now)
      case 'detached': return await this.#onDetached(msg.report, now)
    }
  }

  #tick (now: number): void {
    this.#refreshPeers()
    for (const session of this.#sessions.values()) {
      session.group?.tick(now)
      session.audit.flush()
      const expired = session.run.expire(now)
      for (const l of expired) this.#log.warn({ campaign: session.id, shard: l.index, worker: l.workerName }, 'lease expired (worker silent); shard re-queued')
      session.leasesEnded(expired, 'lease expired')
    }
    this.#schedule(now)
    if (now - this.#lastMetrics < METRICS_EVERY_MS) return
    this.#lastMetrics = now
    for (const session of this.#sessions.values()) {
      if (session.run.finished || session.run.state === 'STOPPED') continue
      const metrics = metricsOf(session.status(now))
      if (metrics === session.lastMetrics) continue
      session.lastMetrics = metrics
      appendMetrics(session.runDir, metrics, now).catch((err: unknown) => { this.#log.warn({ campaign: session.id, err: describeError(err) }, 'cannot append metrics') })
    }
  }

  #refreshPeers (): void {
    if (this.#refreshing) return
    this.#refreshing = true
    this.#ports.peers()
      .then(async peers => { await this.#ctx.tell(this.#ctx.self, { type: 'peers', peers }) })
      .catch(() => {})
      .finally(() => { this.#refreshing = false })
  }

  #onPeerLost (peer: string, state: string, now: number): void {
    this.#peers = this.#peers.map(p => p.peerId === peer ? { ...p, state: state as PeerView['state'] } : p)
    if (state !== 'dead') return
    for (const session of this.#sessions.values()) {
      const lost = session.run.workerLost(peer)
      if (lost.length === 0) continue
      this.#log.warn({ campaign: session.id, worker: peer, shards: lost.length }, `worker died; ${lost.length} shard(s) re-queued (not counted as attempts)`)
      session.leasesEnded(lost, `worker ${peer} died`)
    }
    this.#schedule(now)
  }

  /** Leases ready shards to capable peers with room (see assign), and sends them; a detached campaign's all go to Slurm. */
  #schedule (now: number): void {
    const inFlight = new Map<string, number>()
    for (const s of this.#sessions.values()) for (const l of s.run.leases()) inFlight.set(l.worker, (inFlight.get(l.worker) ?? 0) + 1)
    const cap = this.#peers.reduce((n, p) => n + p.slots.total * WORKER_QUEUE_FACTOR, 0)
    const open = [...this.#sessions.values()].filter(s => !s.closed)
    for (const s of open) if (s.spec.detached != null) this.#scheduleDetached(s, now)
    const demands = open.filter(s => s.spec.detached == null).map(s => s.demand(now, cap))
    const { grants, waiting } = assign(demands, this.#peers, this.#busyUntil, now, inFlight)
    for (const [id, why] of waiting) this.#sessions.get(id)!.run.waiting = why
    for (const g of grants) {
      const session = this.#sessions.get(g.campaignId)!
      const leases = session.run.grantNext(g.fresh, g.peer, g.peerName, now, g.retries)
      for (let i = 0; i < leases.length; i += MAX_LEASES_PER_MESSAGE) {
        sendLeases(session, g.peer, g.peerName, leases.slice(i, i + MAX_LEASES_PER_MESSAGE), this.#leasing)
      }
    }
  }

  /** Every ready shard of a detached campaign goes to the detached actor: Slurm queues them (sbatch --array …%M). */
  #scheduleDetached (session: CampaignSession, now: number): void {
    const d = session.demand(now, DETACHED_BATCH)
    if (d.fenced != null) return
    if ((this.#busyUntil.get(DETACHED_WORKER) ?? 0) > now) return
    const leases = session.run.grantNext(d.fresh, DETACHED_WORKER, DETACHED_WORKER_NAME, now, d.retries.map(r => r.index))
    for (let i = 0; i < leases.length; i += MAX_LEASES_PER_MESSAGE) {
      sendLeases(session, DETACHED_WORKER, DETACHED_WORKER_NAME, leases.slice(i, i + MAX_LEASES_PER_MESSAGE), this.#leasing)
    }
  }

  /** A report of the local detached actor, for the pseudo-worker its campaign's shards are leased to. */
  async #onDetached (report: Extract<CoordinatorRequest, { type: 'result' | 'progress' | 'release' }>, now: number): Promise<unknown> {
    const session = this.#sessions.get(report.campaignId)
    if (session == null) return report.type === 'result' ? await this.#onResult(report, DETACHED_WORKER, now) : { ok: false }
    switch (report.type) {
      // a task Slurm still holds (pending or running) keeps its lease: the queue's wait is not the shard's timeout
      case 'progress': session.run.extend(report.index, report.epoch, DETACHED_WORKER, now); return { ok: true }
      case 'release':
        // a shard Slurm could not take (sbatch failed) or lost: `zp status` says why it waits
        session.run.waiting = `Slurm: ${report.reason}`
        return onRelease(session, report, DETACHED_WORKER, this.#results)
      case 'result': return await this.#onResult(report, DETACHED_WORKER, now)
    }
  }

  #onLeaseReply (msg: LeaseOutcome, now: number): void {
    const session = this.#sessions.get(msg.campaignId)
    if (session == null) return
    const backoff = onLeaseOutcome(session, msg, this.#leasing)
    if (msg.worker === DETACHED_WORKER && msg.reply != null) {
      const refused = msg.reply.refused[0]
      session.run.waiting = refused != null ? `Slurm: ${refused.reason}` : msg.reply.accepted.length > 0 ? undefined : session.run.waiting
    }
    if (backoff != null) this.#busyUntil.set(msg.worker, now + backoff)
    if (msg.reply != null) for (const s of this.#sessions.values()) s.refusedBy.delete(msg.worker)
    this.#schedule(now)
  }

  async #onResult (msg: Extract<CoordinatorRequest, { type: 'result' }>, from: string, now: number): Promise<ResultAck | Later<ResultAck>> {
    const session = this.#sessions.get(msg.campaignId)
    if (session != null) return await onResult(session, msg, from, now, this.#results)
    const rec = await this.#ports.store.campaign(msg.campaignId)
    return { ok: false, stale: true, movedTo: rec?.movedTo }
  }

  async #fetchOutput (worker: string, ref: BlobRef): Promise<ShardOutput> {
    const bytes = await this.#ports.blobs.fetch(worker, ref, AbortSignal.any([this.#ctx.signal, AbortSignal.timeout(FETCH_OUTPUT_TIMEOUT_MS)]))
    return JSON.parse(new TextDecoder().decode(bytes)) as ShardOutput
  }

  #tellWorker (worker: string, msg: WorkerRequest): void {
    void this.#ctx.tell(workerRef(worker, this.#ports.self), msg, { timeoutMs: 10_000 }).catch((err: unknown) => {
      this.#log.warn({ worker, err: describeError(err) }, `could not tell worker to ${msg.type}`)
    })
  }
}
