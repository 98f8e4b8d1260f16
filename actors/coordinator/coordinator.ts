import { join } from 'node:path'
import type { Logger } from 'pino'
import { describeError, InvalidMessageError, NoSuchActorError, UnavailableError } from '../runtime/errors.ts'
import { Later, type ActorContext, type ActorDefinition, type Behavior, type MessageMeta } from '../runtime/types.ts'
import type { PeerView } from '../membership/membership.ts'
import {
  CoordinatorRequestSchema, LeaseReplySchema, WORKER_ACTOR, WORKER_QUEUE_FACTOR,
  type CoordinatorRequest, type LeaseReply, type ResultAck, type WorkerRequest
} from '../../protocols/campaign/messages.ts'
import type { Shard, ShardOutput } from '../../protocols/campaign/shard.ts'
import { PRIORITIES, type BlobRef, type CampaignSpec } from '../../protocols/campaign/spec.ts'
import { CampaignRun, FINAL_STATES, type LeaseInfo } from './campaign.ts'
import { correctness, scalarOf, type CorrectnessReport } from './correctness.ts'
import { canWork, missing, noPeerReason } from './match.ts'
import { ShardPlan } from './plan.ts'
import { appendMetrics, writeConfig, writeSummary } from './reports.ts'
import { AuditLog } from './audit.ts'
import { restoreRun } from './resume.ts'
import type { CampaignRecord, CampaignStore } from './store.ts'
import { liveStatus, recordedStatus, type CampaignStatus } from './status.ts'
import { ReplicaGroup } from './replication.ts'
import { REPLICA_ACTOR, type ReplicaOp } from '../../protocols/campaign/replica.ts'

export { COORDINATOR_ACTOR } from '../../protocols/campaign/messages.ts'

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
}

export interface SubmitCampaign {
  type: 'submit'
  id: string
  spec: CampaignSpec
  specHash: string
  /** rows campaigns: shard byte offsets of the data set, and each shard's sha256 */
  offsets?: number[]
  sliceHashes?: string[]
}

type LocalMessage =
  | SubmitCampaign
  | { type: 'status', id: string }
  | { type: 'list' }
  | { type: 'cancel', id: string }
  | { type: 'tick' }
  | { type: 'peers', peers: PeerView[] }
  | { type: 'peer-lost', peer: string, state: string }
  | { type: 'lease-reply', campaignId: string, worker: string, sent: Array<{ index: number, epoch: number }>, reply?: LeaseReply, error?: { name: string, message: string }, fenced?: boolean }
  /** resume a campaign whose coordinator stopped before it ended (zp resume) */
  | { type: 'resume', id: string }
  /** resume every such campaign (node start, unless --no-resume) */
  | { type: 'resume-all' }
  /** this node's replica won the election for a campaign whose coordinator died: run it from the replicated checkpoint */
  | { type: 'takeover', id: string, term: number, replicas: string[], previous: string }
  | { type: 'superseded', id: string, coordinator?: string, term: number }

export type CoordinatorMessage = CoordinatorRequest | LocalMessage

const TICK_MS = 500
const METRICS_EVERY_MS = 1000
const MAX_LEASES_PER_MESSAGE = 64
const LEASE_ASK_TIMEOUT_MS = 15_000
/** how long a worker that refused (busy) or failed a lease is left alone */
const BUSY_BACKOFF_MS = 250
const REFUSING_BACKOFF_MS = 30_000
/** epochs reserved at a time in the campaign record, so a resumed run never reuses one */
const EPOCH_BLOCK = 10_000
/** how long an ended campaign waits for every replica to have its last state */
const SETTLE_TIMEOUT_MS = 30_000
const PRIORITY_RANK = Object.fromEntries(PRIORITIES.map((p, i) => [p, i])) as Record<string, number>

/**
 * The coordinator of the campaigns submitted on this node. It turns each
 * campaign into leases for capable peers (by priority, balancing by free
 * slots), stores results durably before acknowledging them, retries failed
 * shards with backoff up to a dead-letter list, re-queues the shards of dead
 * or silent workers without counting them against the shard, and writes the
 * run's config, metrics and summary under runs/<id>/.
 */
export function coordinatorActor (ports: CoordinatorPorts): ActorDefinition<CoordinatorMessage> {
  return {
    // workers are not necessarily trusted by this node: what they send is checked against the leases granted
    access: 'public',
    schema: CoordinatorRequestSchema as never,
    mailboxSize: 8192,
    create: (ctx) => new Coordinator(ports, ctx)
  }
}

class Coordinator implements Behavior<CoordinatorMessage> {
  readonly #ports: CoordinatorPorts
  readonly #ctx: ActorContext
  readonly #log: Logger
  readonly #runs = new Map<string, CampaignRun>()
  readonly #busyUntil = new Map<string, number>()
  /** per campaign: workers that refused its leases because they do not trust this node (until one accepts a lease) */
  readonly #untrusting = new Map<string, Set<string>>()
  /** workers that held a lease of a shard before it was re-queued: their late result is still theirs to give */
  readonly #previous = new Map<string, Set<string>>()
  /** rows campaigns: each shard's slice hash, from the scan at submit */
  readonly #sliceHashes = new Map<string, string[]>()
  /** each campaign's record as last saved */
  readonly #records = new Map<string, CampaignRecord>()
  readonly #audits = new Map<string, AuditLog>()
  /** `campaign:shard` → the module checkpoint a retry resumes from */
  readonly #checkpoints = new Map<string, unknown>()
  /** each campaign's replicas (none when it asked for none) */
  readonly #groups = new Map<string, ReplicaGroup>()
  /** campaigns another coordinator took over: where their results go now */
  readonly #moved = new Map<string, { peer: string, term: number }>()
  readonly #timer: ReturnType<typeof setInterval>
  #peers: PeerView[] = []
  #lastMetrics = 0
  #refreshing = false

  constructor (ports: CoordinatorPorts, ctx: ActorContext) {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    this.#timer = setInterval(() => { void ctx.tell(ctx.self, { type: 'tick' }).catch(() => {}) }, TICK_MS)
  }

  stopped (): void {
    clearInterval(this.#timer)
    for (const g of this.#groups.values()) g.close()
  }

  receive (msg: CoordinatorMessage, meta: MessageMeta): unknown {
    const now = Date.now()
    switch (msg.type) {
      case 'progress': return this.#onProgress(msg, meta.from, now)
      case 'result': return this.#onResult(msg, meta.from, now)
      case 'release': return this.#onRelease(msg, meta.from, now)
      case 'checkpoint': return this.#onCheckpoint(msg, meta.from)
    }
    if (meta.from !== this.#ports.self) return undefined
    switch (msg.type) {
      case 'submit': return this.#submit(msg, now)
      case 'status': return this.#status(msg.id, now)
      case 'list': return this.#list(now)
      case 'cancel': return this.#cancel(msg.id, now)
      case 'tick': this.#tick(now); return
      case 'peers': this.#peers = msg.peers; this.#schedule(now); return
      case 'peer-lost': this.#onPeerLost(msg.peer, msg.state, now); return
      case 'lease-reply': this.#onLeaseReply(msg, now); return
      case 'resume': return this.#resume(msg.id, now)
      case 'resume-all': return this.#resumeAll(now)
      case 'takeover': return this.#resume(msg.id, now, msg)
      case 'superseded': return this.#superseded(msg.id, msg)
    }
  }

  async #submit (msg: SubmitCampaign, now: number): Promise<CampaignStatus> {
    try {
      return await this.#start(msg, now)
    } catch (err) {
      this.#runs.delete(msg.id)
      throw new UnavailableError(`cannot start campaign ${msg.spec.name}: ${describeError(err)}`)
    }
  }

  async #start (msg: SubmitCampaign, now: number): Promise<CampaignStatus> {
    const plan = new ShardPlan(msg.spec.shards, { rows: msg.spec.workload.kind === 'onnx' ? msg.spec.workload.data.rows : undefined, offsets: msg.offsets })
    const run = new CampaignRun({ id: msg.id, spec: msg.spec, plan, createdAt: now })
    const runDir = this.#runDir(run.id)
    this.#peers = await this.#ports.peers()
    await writeConfig(runDir, {
      id: run.id,
      specHash: msg.specHash,
      spec: msg.spec,
      coordinator: { peerId: this.#ports.self, name: this.#ports.selfName },
      version: this.#ports.version,
      createdAt: now,
      hardware: this.#peers.filter(p => p.state !== 'dead').map(p => ({
        peerId: p.peerId, name: p.name, state: p.state, slots: p.slots, host: p.capabilities?.host ?? null,
        capabilities: Object.entries(p.capabilities?.capabilities ?? {}).filter(([, c]) => c.status === 'ok').map(([k]) => k)
      }))
    })
    const audit = await AuditLog.open(join(runDir, 'audit.jsonl'), this.#auditFailed(msg.id))
    audit.append({ type: 'submitted', name: msg.spec.name, specHash: msg.specHash, shards: plan.count, priority: msg.spec.priority })
    this.#audits.set(run.id, audit)
    this.#runs.set(run.id, run)
    if (msg.sliceHashes != null) this.#sliceHashes.set(run.id, msg.sliceHashes)
    await this.#save(run, { specHash: msg.specHash, offsets: msg.offsets, sliceHashes: msg.sliceHashes, epochReserved: 0, runDir, term: 0 })
    // after the record is stored: a replica starts from a snapshot of it
    this.#startReplication(run, 0, [])
    this.#log.info({ campaign: run.id, name: msg.spec.name, shards: plan.count, priority: msg.spec.priority }, `campaign ${msg.spec.name} submitted`)
    if (run.finished) this.#finalize(run)
    this.#schedule(now)
    return liveStatus(run, now, this.#ports.self, runDir)
  }

  /** null also for a campaign another coordinator took over: its status is theirs to give */
  async #status (id: string, now: number): Promise<CampaignStatus | null> {
    const run = this.#runs.get(id)
    if (run != null) return this.#live(run, now)
    const rec = await this.#ports.store.campaign(id)
    return rec != null && rec.movedTo == null ? recordedStatus(rec, this.#ports.self) : null
  }

  #live (run: CampaignRun, now: number): CampaignStatus {
    const status = liveStatus(run, now, this.#ports.self, this.#runDir(run.id))
    const group = this.#groups.get(run.id)
    const record = this.#records.get(run.id)
    const refusedBy = [...new Set([...this.#untrusting.get(run.id) ?? [], ...group?.refusers ?? []])]
    return { ...status, term: group?.term ?? record?.term ?? 0, replicas: group?.members ?? record?.replicas ?? [], refusedBy }
  }

  async #list (now: number): Promise<CampaignStatus[]> {
    const live = [...this.#runs.values()].map(r => this.#live(r, now))
    const recorded = (await this.#ports.store.campaigns()).filter(r => !this.#runs.has(r.id)).map(r => r.movedTo != null
      ? { ...recordedStatus(r, r.movedTo.peer), waiting: `taken over by ${r.movedTo.peer} (term ${r.movedTo.term}); ask that node` }
      : recordedStatus(r, this.#ports.self))
    return [...live, ...recorded].sort((a, b) => b.createdAt - a.createdAt)
  }

  async #cancel (id: string, now: number): Promise<CampaignStatus | null> {
    const run = this.#runs.get(id)
    if (run == null) return await this.#status(id, now)
    const leases = run.cancel(now)
    this.#audit(run.id, { type: 'cancelled', aborted: leases.map(l => l.index), done: run.doneCount })
    this.#delLeases(run.id, leases.map(l => l.index))
    const byWorker = groupBy(leases, l => l.worker)
    for (const [worker, ls] of byWorker) this.#tellWorker(worker, { type: 'cancel', campaignId: id, shards: ls.map(l => l.index) })
    if (leases.length > 0 || run.state === 'CANCELLED') {
      this.#log.info({ campaign: id, aborted: leases.length, done: run.doneCount }, 'campaign cancelled; finished shards kept')
      this.#finalize(run)
    }
    return this.#live(run, now)
  }

  #tick (now: number): void {
    this.#refreshPeers()
    for (const g of this.#groups.values()) g.tick(now)
    for (const run of this.#runs.values()) {
      const expired = run.expire(now)
      for (const l of expired) {
        this.#remember(run.id, l)
        this.#log.warn({ campaign: run.id, shard: l.index, worker: l.workerName }, 'lease expired (worker silent); shard re-queued')
      }
      if (expired.length > 0) this.#requeued(run.id, expired.map(l => l.index), 'lease expired')
    }
    this.#schedule(now)
    if (now - this.#lastMetrics >= METRICS_EVERY_MS) {
      this.#lastMetrics = now
      for (const run of this.#runs.values()) {
        if (run.finished) continue
        void appendMetrics(this.#runDir(run.id), liveStatus(run, now, this.#ports.self, this.#runDir(run.id)), now)
          .catch((err: unknown) => { this.#log.warn({ campaign: run.id, err: describeError(err) }, 'cannot append metrics') })
      }
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
    for (const run of this.#runs.values()) {
      const leases = [...run.leases()].filter(l => l.worker === peer)
      for (const l of leases) this.#remember(run.id, l)
      const lost = run.workerLost(peer)
      if (lost.length > 0) {
        this.#log.warn({ campaign: run.id, worker: peer, shards: lost }, `worker died; ${lost.length} shard(s) re-queued (not counted as attempts)`)
        this.#requeued(run.id, lost, `worker ${peer} died`)
      }
    }
    this.#schedule(now)
  }

  /**
   * Matches ready shards to capable peers with room, campaigns by priority
   * (then age), each peer's room counted across all campaigns of this node.
   */
  #schedule (now: number): void {
    const runs = [...this.#runs.values()]
      .filter(r => r.hasReady(now))
      .sort((a, b) => PRIORITY_RANK[b.spec.priority]! - PRIORITY_RANK[a.spec.priority]! || a.createdAt - b.createdAt)
    if (runs.length === 0) return
    const inFlight = new Map<string, number>()
    for (const run of this.#runs.values()) for (const l of run.leases()) inFlight.set(l.worker, (inFlight.get(l.worker) ?? 0) + 1)
    const room = (p: PeerView): number => (this.#busyUntil.get(p.peerId) ?? 0) > now ? 0 : p.slots.total * WORKER_QUEUE_FACTOR - (inFlight.get(p.peerId) ?? 0)
    const working = this.#peers.filter(canWork)

    for (const run of runs) {
      const capable = working.filter(p => missing(p, run.spec.requires).length === 0)
      if (capable.length === 0) {
        run.waiting = noPeerReason(this.#peers, run.spec.requires)
        continue
      }
      // fencing: lease only while enough replicas confirm this node is still the campaign's coordinator
      const group = this.#groups.get(run.id)
      if (group != null && !group.leads(now)) {
        run.waiting = group.describe(now)
        continue
      }
      const byRoom = capable.map(p => ({ p, free: room(p) })).filter(x => x.free > 0).sort((a, b) => b.free - a.free)
      if (byRoom.length === 0) {
        run.waiting = `no free slot on ${capable.length} capable peer${capable.length === 1 ? '' : 's'}`
        continue
      }
      for (const { p, free } of byRoom) {
        const indexes = run.take(Math.min(free, MAX_LEASES_PER_MESSAGE), now)
        if (indexes.length === 0) break
        const leases = indexes.map(i => run.lease(i, p.peerId, p.name, now))
        inFlight.set(p.peerId, (inFlight.get(p.peerId) ?? 0) + leases.length)
        this.#sendLeases(run, p.peerId, leases)
      }
    }
  }

  #sendLeases (run: CampaignRun, worker: string, leases: LeaseInfo[]): void {
    const sent = leases.map(l => ({ index: l.index, epoch: l.epoch }))
    const work = async (): Promise<LocalMessage> => {
      const shards = leases.map(l => this.#shard(run, l.index))
      // recorded before it leaves: a restarted coordinator still knows who holds what, and never reuses an epoch
      const stored = leases.map(l => ({ index: l.index, worker, epoch: l.epoch }))
      const reserved = this.#reserveEpochs(run)
      await this.#ports.store.putLeases(run.id, stored, reserved)
      this.#replicate(run.id, [{ op: 'leases', put: stored, del: [] }, ...(reserved != null ? [{ op: 'record' as const, record: reserved as never }] : [])])
      // fencing, checked as the lease leaves (the write above may have taken a while): only while replicas confirm this coordinator
      const group = this.#groups.get(run.id)
      if (group != null && !group.leads(Date.now())) return { type: 'lease-reply', campaignId: run.id, worker, sent, fenced: true }
      this.#audit(run.id, { type: 'leased', worker, shards: leases.map(l => [l.index, l.epoch, l.attempt]) })
      this.#ports.blobs.grant(run.id, worker, blobHashes(run.spec, shards))
      const reply = await this.#ctx.ask({ peer: worker, name: WORKER_ACTOR }, {
        type: 'lease',
        campaignId: run.id,
        campaignName: run.spec.name,
        workload: run.spec.workload,
        params: run.spec.params,
        term: this.#groups.get(run.id)?.term ?? 0,
        successors: this.#groups.get(run.id)?.members ?? [],
        leases: leases.map((l, i) => ({
          shard: shards[i]!, attempt: l.attempt, epoch: l.epoch, timeoutMs: run.spec.shardTimeoutMs, resumeFrom: this.#checkpoints.get(`${run.id}:${l.index}`)
        }))
      } satisfies WorkerRequest, { timeoutMs: LEASE_ASK_TIMEOUT_MS, replySchema: LeaseReplySchema })
      return { type: 'lease-reply', campaignId: run.id, worker, sent, reply }
    }
    work()
      .catch((err: unknown) => ({ type: 'lease-reply' as const, campaignId: run.id, worker, sent, error: { name: (err as Error).name, message: describeError(err) } }))
      .then(async msg => { await this.#ctx.tell(this.#ctx.self, msg) })
      .catch(() => {})
  }

  #shard (run: CampaignRun, index: number): Shard {
    const shard = run.plan.at(index)
    if (shard.kind !== 'rows') return shard
    const sliceHash = this.#sliceHashes.get(run.id)?.[index]
    if (sliceHash == null) throw new Error(`no slice hash for shard ${index} of ${run.id}`)
    return { ...shard, sliceHash }
  }

  #onLeaseReply (msg: Extract<LocalMessage, { type: 'lease-reply' }>, now: number): void {
    const run = this.#runs.get(msg.campaignId)
    if (run == null) return
    if (msg.fenced === true) {
      // never left: the replicas stopped confirming this coordinator before it could send them
      for (const s of msg.sent) run.unlease(s.index, s.epoch)
      this.#delLeases(run.id, msg.sent.map(s => s.index))
    } else if (msg.error != null) {
      const back = msg.sent.filter(s => run.unlease(s.index, s.epoch)).map(s => s.index)
      if (back.length > 0) this.#requeued(run.id, back, `lease not delivered: ${msg.error.message}`)
      const refusing = msg.error.name === 'NotAuthorizedError'
      if (refusing) {
        const peers = this.#untrusting.get(run.id) ?? new Set<string>()
        this.#untrusting.set(run.id, peers.add(msg.worker))
      }
      this.#busyUntil.set(msg.worker, now + (refusing ? REFUSING_BACKOFF_MS : BUSY_BACKOFF_MS))
      this.#log.warn({ campaign: run.id, worker: msg.worker, err: msg.error.message },
        refusing ? `worker does not trust this node; start it with --trust ${this.#ports.self} (or join through this node)` : 'could not lease shards to worker')
    } else if (msg.reply != null) {
      // it took a lease: it trusts this node now (restarted with --trust, say)
      for (const peers of this.#untrusting.values()) peers.delete(msg.worker)
      const byEpoch = new Map(msg.sent.map(s => [s.epoch, s.index]))
      const back: number[] = []
      for (const r of msg.reply.refused) {
        const index = byEpoch.get(r.epoch)
        if (index != null && run.unlease(index, r.epoch)) back.push(index)
      }
      if (back.length > 0) this.#requeued(run.id, back, `refused by the worker: ${msg.reply.refused[0]!.reason}`)
      if (msg.reply.refused.length > 0) this.#busyUntil.set(msg.worker, now + BUSY_BACKOFF_MS)
    }
    this.#schedule(now)
  }

  #onProgress (msg: Extract<CoordinatorRequest, { type: 'progress' }>, from: string, now: number): void {
    this.#runs.get(msg.campaignId)?.progress(msg.index, msg.epoch, from, msg.fraction, now)
  }

  async #onResult (msg: Extract<CoordinatorRequest, { type: 'result' }>, from: string, now: number): Promise<ResultAck | Later<ResultAck>> {
    const run = this.#runs.get(msg.campaignId)
    if (run == null) return { ok: false, stale: true, movedTo: this.#moved.get(msg.campaignId) }
    if (run.isDone(msg.index)) return await this.#duplicate(run, msg, from)
    if (!this.#held(run, msg.index, from)) {
      this.#log.warn({ campaign: run.id, shard: msg.index, from }, 'result from a peer that holds no lease for the shard: ignored')
      return { ok: false, stale: true }
    }
    if (!msg.outcome.ok) {
      const verdict = run.fail(msg.index, msg.epoch, from, msg.outcome.error, msg.outcome.retryable, now)
      if (verdict !== 'stale') {
        const line = { campaign: run.id, shard: msg.index, attempt: msg.attempt, worker: from, err: msg.outcome.error.split('\n')[0] }
        if (verdict === 'dead') this.#log.error(line, `shard ${msg.index} failed for good; dead-lettered`)
        else this.#log.warn(line, `shard ${msg.index} failed; will retry`)
        this.#audit(run.id, { type: verdict === 'dead' ? 'dead-lettered' : 'failed', shard: msg.index, worker: from, epoch: msg.epoch, attempt: msg.attempt, error: line.err })
        await this.#persistShard(run, msg.index, verdict === 'dead' ? msg.outcome.error : undefined)
      }
      this.#afterChange(run, now)
      return this.#whenDurable(run.id, { ok: true, stale: verdict === 'stale' })
    }
    const output = msg.outcome.output ?? await this.#fetchOutput(from, msg.outcome.blob)
    // durable first: a shard counts as done only once its result is stored
    try {
      const result = { rows: output.rows, info: output.info, worker: from, attempt: msg.attempt, durationMs: msg.durationMs }
      await this.#ports.store.putResult(run.id, msg.index, result)
      this.#replicate(run.id, [{ op: 'result', index: msg.index, result }])
    } catch (err) {
      this.#log.error({ campaign: run.id, shard: msg.index, err: describeError(err) }, 'cannot store a shard result (is the disk full?); the shard stays owed and its worker retries')
      throw new UnavailableError(`the coordinator cannot store the result of shard ${msg.index}: ${describeError(err)}`)
    }
    const accelerator = typeof output.info?.executionProvider === 'string' ? `onnx:${output.info.executionProvider}` : run.spec.workload.kind === 'onnx' ? 'onnx' : 'cpu'
    const { duplicate, supersedes } = run.complete(msg.index, from, now, { durationMs: msg.durationMs, accelerator })
    this.#audit(run.id, { type: 'result', shard: msg.index, worker: from, epoch: msg.epoch, attempt: msg.attempt, rows: output.rows.length })
    this.#previous.delete(`${run.id}:${msg.index}`)
    this.#checkpoints.delete(`${run.id}:${msg.index}`)
    if (supersedes != null) this.#tellWorker(supersedes.worker, { type: 'cancel', campaignId: run.id, shards: [msg.index] })
    this.#afterChange(run, now)
    // done once it is durable: on this disk now, and on enough replicas when the answer goes out
    return this.#whenDurable(run.id, { ok: true, duplicate })
  }

  /** The answer once everything stored so far is on enough replicas; the mailbox goes on meanwhile. */
  #whenDurable<T> (campaignId: string, answer: T): T | Later<T> {
    const group = this.#groups.get(campaignId)
    if (group == null || group.durableSeq >= group.seq) return answer
    return new Later(group.durable(group.seq).then(() => answer))
  }

  #replicate (campaignId: string, ops: ReplicaOp[]): void {
    this.#groups.get(campaignId)?.push(ops)
  }

  #delLeases (campaignId: string, indexes: number[]): void {
    if (indexes.length === 0) return
    this.#replicate(campaignId, [{ op: 'leases', put: [], del: indexes }])
    void this.#ports.store.delLeases(campaignId, indexes).catch(() => {})
  }

  /** An ended campaign's replicas get its last state; then replication stops. */
  async #settle (campaignId: string): Promise<void> {
    const group = this.#groups.get(campaignId)
    if (group == null) return
    try {
      await group.settled(group.seq, SETTLE_TIMEOUT_MS)
    } catch (err) {
      this.#log.warn({ campaign: campaignId, err: describeError(err) }, 'not every replica has the ended campaign\'s last state; they keep what they have')
    }
    if (this.#groups.get(campaignId) === group && this.#runs.get(campaignId)?.finished === true) {
      group.close()
      this.#groups.delete(campaignId)
    }
  }

  /** Streams the campaign's checkpoints to its replicas, and fences this coordinator by their confirmations. */
  #startReplication (run: CampaignRun, term: number, members: string[]): void {
    this.#groups.get(run.id)?.close()
    const desired = run.spec.replicas ?? this.#ports.defaultReplicas ?? 2
    if (desired === 0 && term === 0) {
      this.#groups.delete(run.id)
      return
    }
    const files = blobRefs(run.spec)
    const group = new ReplicaGroup({ campaignId: run.id, term, desired, members }, {
      log: this.#log,
      ask: async (peer, msg, timeoutMs) => await this.#ctx.ask({ peer, name: REPLICA_ACTOR }, msg, { timeoutMs }),
      snapshot: async () => await this.#ports.store.snapshot(run.id),
      files: () => files,
      offer: async (peer, bytes, name) => await this.#ports.blobs.offer(peer, bytes, name),
      grantFiles: (peer) => { this.#ports.blobs.grant(run.id, peer, files.map(f => f.hash)) },
      isDead: (peer) => { const p = this.#peers.find(x => x.peerId === peer); return p == null || p.state === 'dead' },
      pickReplacement: (exclude) => this.#peers
        .filter(p => !p.self && p.peerId !== this.#ports.self && p.state === 'alive' && !exclude.has(p.peerId))
        .sort((a, b) => a.peerId.localeCompare(b.peerId))[0]?.peerId,
      membersChanged: (replicas) => {
        const known = this.#records.get(run.id)
        if (known != null) this.#records.set(run.id, { ...known, replicas })
        this.#audit(run.id, { type: 'replicas', replicas })
        this.#log.info({ campaign: run.id, replicas }, 'campaign replicas')
      },
      leading: () => { void this.#ctx.tell(this.#ctx.self, { type: 'tick' }).catch(() => {}) },
      superseded: (by) => { void this.#ctx.tell(this.#ctx.self, { type: 'superseded', id: run.id, coordinator: by.coordinator, term: by.term }).catch(() => {}) }
    })
    this.#groups.set(run.id, group)
    group.tick(Date.now())
  }

  /** Another coordinator took this campaign over (this node was cut off or thought dead): stop running it here. */
  async #superseded (id: string, by: { coordinator?: string, term: number }): Promise<void> {
    const run = this.#runs.get(id)
    const group = this.#groups.get(id)
    if (run == null || group == null || by.term <= group.term) return
    group.close()
    this.#groups.delete(id)
    this.#runs.delete(id)
    this.#untrusting.delete(id)
    if (by.coordinator != null) this.#moved.set(id, { peer: by.coordinator, term: by.term })
    this.#audit(id, { type: 'superseded', by: by.coordinator ?? null, term: by.term, done: run.doneCount })
    await this.#audits.get(id)?.flush()
    this.#audits.delete(id)
    this.#ports.blobs.revoke(id)
    const known = this.#records.get(id) ?? await this.#ports.store.campaign(id)
    if (known != null) {
      const record = { ...this.#recordOf(run, known), movedTo: by.coordinator != null ? { peer: by.coordinator, term: by.term } : undefined }
      await this.#ports.store.saveCampaign(record).catch(() => {})
    }
    this.#log.warn({ campaign: id, coordinator: by.coordinator, term: by.term }, 'another coordinator has taken this campaign over; it no longer runs here')
  }

  #onRelease (msg: Extract<CoordinatorRequest, { type: 'release' }>, from: string, now: number): { ok: boolean } {
    const run = this.#runs.get(msg.campaignId)
    const lease = run != null ? [...run.leases()].find(l => l.index === msg.index) : undefined
    if (run == null || lease == null || lease.worker !== from || lease.epoch !== msg.epoch) return { ok: false }
    this.#remember(run.id, lease)
    run.requeue(msg.index, msg.epoch)
    this.#requeued(run.id, [msg.index], `handed back: ${msg.reason}`)
    this.#log.info({ campaign: run.id, shard: msg.index, worker: lease.workerName, reason: msg.reason }, 'shard handed back; re-queued (not an attempt)')
    this.#schedule(now)
    return { ok: true }
  }

  async #fetchOutput (worker: string, ref: BlobRef | undefined): Promise<ShardOutput> {
    if (ref == null) return { rows: [] }
    try {
      const bytes = await this.#ports.blobs.fetch(worker, ref, AbortSignal.timeout(120_000))
      return JSON.parse(new TextDecoder().decode(bytes)) as ShardOutput
    } catch (err) {
      throw new UnavailableError(`cannot fetch the result blob of ${ref.name} from its worker: ${describeError(err)}`)
    }
  }

  /** Did `peer` hold a lease of this shard, now or before it was re-queued? */
  #held (run: CampaignRun, index: number, peer: string): boolean {
    for (const l of run.leases()) if (l.index === index) return l.worker === peer || (this.#previous.get(`${run.id}:${index}`)?.has(peer) ?? false)
    return this.#previous.get(`${run.id}:${index}`)?.has(peer) ?? false
  }

  #remember (campaignId: string, lease: Pick<LeaseInfo, 'index' | 'worker'>): void {
    const key = `${campaignId}:${lease.index}`
    const set = this.#previous.get(key) ?? new Set<string>()
    set.add(lease.worker)
    this.#previous.set(key, set)
  }

  #afterChange (run: CampaignRun, now: number): void {
    if (run.finished) this.#finalize(run)
    this.#schedule(now)
  }

  #finalize (run: CampaignRun): void {
    const runDir = this.#runDir(run.id)
    const work = async (): Promise<void> => {
      const status = liveStatus(run, run.endedAt ?? Date.now(), this.#ports.self, runDir)
      await appendMetrics(runDir, status, Date.now())
      const report = await this.#correctness(run)
      await writeSummary(runDir, run, status, report)
      this.#audit(run.id, { type: 'finished', state: run.state, done: run.doneCount, failed: run.deadCount })
      await this.#audits.get(run.id)?.flush()
      await this.#save(run)
      await this.#settle(run.id)
      if (run.leaseCount === 0) this.#ports.blobs.revoke(run.id)
      this.#log.info({ campaign: run.id, state: run.state, done: run.doneCount, failed: run.deadCount, runDir }, `campaign ${run.spec.name} ${run.state}`)
    }
    work().catch((err: unknown) => { this.#log.error({ campaign: run.id, err: describeError(err) }, 'cannot write the campaign summary') })
  }

  async #correctness (run: CampaignRun): Promise<CorrectnessReport | undefined> {
    const w = run.spec.workload
    if (w.kind !== 'onnx' || w.reference == null || run.state === 'CANCELLED') return undefined
    const rows = w.data.rows
    const predictions = new Float64Array(rows)
    const present = new Uint8Array(rows)
    for await (const { result } of this.#ports.store.results(run.id)) {
      for (const r of result.rows) {
        const row = (r as { row?: unknown } | null)?.row
        const value = scalarOf(r, w.output.column)
        if (typeof row === 'number' && row >= 0 && row < rows && value != null) {
          predictions[row] = value
          present[row] = 1
        }
      }
    }
    const reference = w.reference.data ?? w.data
    return await correctness({
      predictions, present, reference, referencePath: this.#ports.blobs.path(reference.blob.hash), column: w.reference.column, tolerance: w.reference.tolerance
    })
  }

  /** Saves the campaign's record: the run as it stands, with what only submit knows kept from before. */
  async #save (run: CampaignRun, first?: Pick<CampaignRecord, 'specHash' | 'offsets' | 'sliceHashes' | 'epochReserved' | 'runDir' | 'term'>): Promise<void> {
    const record = this.#recordOf(run, first ?? this.#records.get(run.id) ?? await this.#ports.store.campaign(run.id))
    await this.#ports.store.saveCampaign(record)
    this.#replicate(run.id, [{ op: 'record', record: record as never }])
    this.#records.set(run.id, record)
  }

  #recordOf (run: CampaignRun, known?: Partial<CampaignRecord>, epochReserved?: number): CampaignRecord {
    return {
      id: run.id,
      spec: run.spec,
      specHash: known?.specHash ?? '',
      createdAt: run.createdAt,
      startedAt: run.startedAt,
      endedAt: run.endedAt,
      state: run.state,
      shards: run.total,
      done: run.doneCount,
      deadLetters: run.deadLetters(),
      runDir: known?.runDir ?? this.#runDir(run.id),
      offsets: known?.offsets,
      sliceHashes: known?.sliceHashes,
      epochReserved: epochReserved ?? known?.epochReserved ?? 0,
      auditHead: this.#audits.get(run.id)?.head ?? known?.auditHead,
      term: this.#groups.get(run.id)?.term ?? known?.term ?? 0,
      replicas: this.#groups.get(run.id)?.members ?? known?.replicas ?? []
    }
  }

  /** The record with a new block of epochs, when the run has used up its reservation; else nothing to save. */
  #reserveEpochs (run: CampaignRun): CampaignRecord | undefined {
    const known = this.#records.get(run.id)
    if (known == null || run.epoch <= (known.epochReserved ?? 0)) return undefined
    const next = this.#recordOf(run, known, run.epoch + EPOCH_BLOCK)
    this.#records.set(run.id, next)
    return next
  }

  /** A shard's failures, dead letter and checkpoint, as they stand now. */
  async #persistShard (run: CampaignRun, index: number, deadError?: string): Promise<void> {
    try {
      const state = {
        failures: run.failures(index),
        ...(deadError != null ? { dead: { attempts: run.failures(index), error: deadError } } : {}),
        ...(this.#checkpoints.has(`${run.id}:${index}`) ? { checkpoint: this.#checkpoints.get(`${run.id}:${index}`) } : {})
      }
      await this.#ports.store.putShard(run.id, index, state)
      this.#replicate(run.id, [{ op: 'shard', index, state }])
    } catch (err) {
      this.#log.error({ campaign: run.id, shard: index, err: describeError(err) }, 'cannot record a shard failure (is the disk full?)')
    }
  }

  #requeued (campaignId: string, shards: number[], reason: string): void {
    this.#audit(campaignId, { type: 'requeued', shards, reason })
    this.#delLeases(campaignId, shards)
  }

  #auditFailed (campaignId: string): (err: Error) => void {
    return (err) => { this.#log.error({ campaign: campaignId, err: err.message }, 'cannot write the audit log (is the disk full?); a gap record will say how many records were lost') }
  }

  #audit (campaignId: string, event: Parameters<AuditLog['append']>[0]): void {
    this.#audits.get(campaignId)?.append(event)
  }

  /**
   * The same shard again (a worker presumed lost delivered after all): counted
   * once. The same rows are a harmless duplicate; different rows mean the
   * workload is not deterministic, and the later result is refused.
   */
  async #duplicate (run: CampaignRun, msg: Extract<CoordinatorRequest, { type: 'result' }>, from: string): Promise<ResultAck | Later<ResultAck>> {
    if (!msg.outcome.ok) return this.#whenDurable(run.id, { ok: true, duplicate: true })
    const stored = await this.#ports.store.result(run.id, msg.index)
    const output = msg.outcome.output ?? await this.#fetchOutput(from, msg.outcome.blob)
    const same = stored != null && JSON.stringify(stored.rows) === JSON.stringify(output.rows)
    this.#audit(run.id, { type: 'duplicate', shard: msg.index, worker: from, epoch: msg.epoch, same })
    if (same) return this.#whenDurable(run.id, { ok: true, duplicate: true })
    this.#log.warn({ campaign: run.id, shard: msg.index, worker: from }, `shard ${msg.index} came back with different rows than the result already stored: the workload is not deterministic; the later result is refused`)
    return { ok: false, stale: true }
  }

  async #onCheckpoint (msg: Extract<CoordinatorRequest, { type: 'checkpoint' }>, from: string): Promise<{ ok: boolean } | Later<{ ok: boolean }>> {
    const run = this.#runs.get(msg.campaignId)
    const lease = run != null ? [...run.leases()].find(l => l.index === msg.index) : undefined
    if (run == null || lease == null || lease.worker !== from || lease.epoch !== msg.epoch) return { ok: false }
    this.#checkpoints.set(`${run.id}:${msg.index}`, msg.state)
    try {
      const state = { failures: run.failures(msg.index), checkpoint: msg.state }
      await this.#ports.store.putShard(run.id, msg.index, state)
      this.#replicate(run.id, [{ op: 'shard', index: msg.index, state }])
    } catch (err) {
      throw new UnavailableError(`cannot store the checkpoint of shard ${msg.index}: ${describeError(err)}`)
    }
    return this.#whenDurable(run.id, { ok: true })
  }

  async #resumeAll (now: number): Promise<void> {
    for (const record of await this.#ports.store.campaigns()) {
      if (record.movedTo != null) this.#moved.set(record.id, record.movedTo)
      if (FINAL_STATES.has(record.state) || this.#runs.has(record.id) || record.movedTo != null) continue
      await this.#resume(record.id, now).catch((err: unknown) => {
        this.#log.error({ campaign: record.id, err: describeError(err) }, 'cannot resume campaign')
      })
    }
  }

  /** Picks a campaign up from its checkpoint: shards with a result are never run again. */
  async #resume (id: string, now: number, takeover?: { term: number, replicas: string[], previous: string }): Promise<CampaignStatus> {
    const live = this.#runs.get(id)
    const record = await this.#ports.store.campaign(id)
    if (record == null) throw new NoSuchActorError(`no campaign ${id} on this node`)
    const state = live?.state ?? record.state
    if (FINAL_STATES.has(state)) throw new InvalidMessageError(`campaign ${id} has ended (${state}); there is nothing to resume`)
    if (record.movedTo != null && takeover == null) throw new InvalidMessageError(`campaign ${id} was taken over by ${record.movedTo.peer} (term ${record.movedTo.term}); it runs there now`)
    if (live != null) return this.#live(live, now)
    const { run, leases, checkpoints } = await restoreRun(record, this.#ports.store, now)
    for (const l of leases) this.#remember(id, { index: l.index, worker: l.worker })
    for (const [index, state] of checkpoints) this.#checkpoints.set(`${id}:${index}`, state)
    if (record.sliceHashes != null) this.#sliceHashes.set(id, record.sliceHashes)
    const audit = await AuditLog.open(join(record.runDir, 'audit.jsonl'), this.#auditFailed(id))
    this.#audits.set(id, audit)
    const term = takeover?.term ?? record.term ?? 0
    this.#records.set(id, { ...record, term, movedTo: undefined })
    this.#moved.delete(id)
    this.#runs.set(id, run)
    const pending = run.total - run.doneCount - run.deadCount
    if (takeover != null) {
      audit.append({ type: 'takeover', term, previous: takeover.previous, done: run.doneCount, failed: run.deadCount, pending, leasesInForce: leases.length })
      this.#log.warn({ campaign: id, term, previous: takeover.previous, done: run.doneCount, total: run.total }, `took over campaign ${run.spec.name} from its dead coordinator: ${run.doneCount} of ${run.total} shards already done`)
    } else {
      audit.append({ type: 'resumed', done: run.doneCount, failed: run.deadCount, pending, leasesInForce: leases.length })
      this.#log.info({ campaign: id, done: run.doneCount, total: run.total }, `resumed campaign ${run.spec.name} from its checkpoint: ${run.doneCount} of ${run.total} shards already done`)
    }
    this.#peers = await this.#ports.peers().catch(() => this.#peers)
    this.#startReplication(run, term, takeover?.replicas ?? record.replicas ?? [])
    await this.#save(run)
    if (takeover != null) this.#announce(run, term)
    if (run.finished) this.#finalize(run)
    this.#schedule(now)
    return this.#live(run, now)
  }

  /** Tells every live worker that results of this campaign come here now (and lets them fetch its files). */
  #announce (run: CampaignRun, term: number): void {
    const files = blobRefs(run.spec).map(f => f.hash)
    for (const p of this.#peers) {
      if (p.state === 'dead') continue
      this.#ports.blobs.grant(run.id, p.peerId, files)
      void this.#ctx.ask({ peer: p.peerId, name: WORKER_ACTOR }, { type: 'moved', campaignId: run.id, term } satisfies WorkerRequest, { timeoutMs: 10_000 })
        .catch((err: unknown) => { this.#log.debug({ worker: p.peerId, err: describeError(err) }, 'could not tell a worker the campaign moved') })
    }
  }

  #tellWorker (worker: string, msg: WorkerRequest): void {
    void this.#ctx.tell({ peer: worker, name: WORKER_ACTOR }, msg, { timeoutMs: 10_000 }).catch((err: unknown) => {
      this.#log.warn({ worker, err: describeError(err) }, `could not tell worker to ${msg.type}`)
    })
  }

  #runDir (id: string): string {
    return join(this.#ports.runsDir, id)
  }
}

/** The workload's files: what a replica needs to run the campaign itself. */
function blobRefs (spec: CampaignSpec): BlobRef[] {
  const w = spec.workload
  if (w.kind === 'module') return [w.module]
  if (w.kind === 'onnx') return [w.model, w.data.blob, ...(w.reference?.data != null ? [w.reference.data.blob] : [])]
  return []
}

/** The blobs a worker needs for these shards: the workload's files and, for rows, each slice. */
function blobHashes (spec: CampaignSpec, shards: Shard[]): string[] {
  const w = spec.workload
  const out: string[] = []
  if (w.kind === 'module') out.push(w.module.hash)
  if (w.kind === 'onnx') {
    out.push(w.model.hash, w.data.blob.hash)
    for (const s of shards) if (s.kind === 'rows') out.push(s.sliceHash)
  }
  return out
}

function groupBy<T> (items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    out.set(k, [...(out.get(k) ?? []), item])
  }
  return out
}
