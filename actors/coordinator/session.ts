import type { Logger } from 'pino'
import type { Shard } from '../../protocols/campaign/shard.ts'
import type { BlobRef, CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { ReplicaOp } from '../../protocols/campaign/replica.ts'
import { describeError } from '../runtime/errors.ts'
import { Later, type ActorContext } from '../runtime/types.ts'
import type { PeerView } from '../membership/membership.ts'
import type { Demand } from './assign.ts'
import type { AuditTrail } from './audit-trail.ts'
import type { CampaignRun } from './campaign.ts'
import { CommitQueue } from './commit.ts'
import type { ReplicaGroup } from './replication.ts'
import { liveStatus, type CampaignStatus } from './status.ts'
import type { CampaignRecord, CampaignStore, StoredResult } from './store.ts'

/** What a coordinator gives each of its sessions. */
export interface SessionIO {
  self: string
  selfName: string
  store: CampaignStore
  ctx: ActorContext
  log: Logger
  /** the peers as the coordinator last saw them */
  peers: () => readonly PeerView[]
  blobs: {
    grant: (scope: string, peer: string, hashes: string[]) => void
    revoke: (scope: string) => void
  }
  metrics?: CoordinatorMetrics
}

/** Lease counts for the node's Prometheus metrics. */
export interface CoordinatorMetrics {
  leases: (campaign: string, event: 'granted' | 'requeued', count: number) => void
}

/** epochs reserved at a time in the campaign record, so a resumed run never reuses one */
const EPOCH_BLOCK = 10_000
/** leases at most this many per worker message */
export const MAX_LEASES_PER_MESSAGE = 64

/**
 * Everything a coordinator holds for one campaign: its shard table, its
 * record as last committed, its audit trail, its replica group, who held each
 * shard's leases, module checkpoints and the peers that refused it. Every
 * durable change goes through `commit` (the local store, then the replicas);
 * `close` releases all of it.
 */
export class CampaignSession {
  readonly id: string
  readonly run: CampaignRun
  readonly audit: AuditTrail
  readonly runDir: string
  /** the record as last committed */
  record: CampaignRecord
  group: ReplicaGroup | undefined
  /** shard → workers that held a lease of it before it was re-leased: their late result still counts */
  readonly holders = new Map<number, Set<string>>()
  /** shard → the module checkpoint a retry resumes from */
  readonly checkpoints = new Map<number, unknown>()
  /** workers that refused its leases because they do not trust this node (until one accepts) */
  readonly refusedBy = new Set<string>()
  /** the end is written (summary, reports, record): only then is a final state reported */
  reported = false
  /** the last metrics line written, without its time: an unchanged one is not written again */
  lastMetrics = ''
  #closed = false
  readonly #commits: CommitQueue
  readonly #io: SessionIO

  constructor (init: { run: CampaignRun, record: CampaignRecord, audit: AuditTrail, io: SessionIO }) {
    this.id = init.run.id
    this.run = init.run
    this.record = init.record
    this.audit = init.audit
    this.runDir = init.record.runDir
    this.#io = init.io
    this.#commits = new CommitQueue({
      apply: async (ops) => { await init.io.store.apply(this.id, ops) },
      push: (ops) => this.group?.push(ops) ?? 0
    })
  }

  get spec (): CampaignSpec {
    return this.run.spec
  }

  get term (): number {
    return this.group?.term ?? this.record.term ?? 0
  }

  get replicas (): string[] {
    return this.group?.members ?? this.record.replicas ?? []
  }

  get closed (): boolean {
    return this.#closed
  }

  /** Writes `ops` here and streams them to the replicas; resolves (with their sequence number) once they are on this disk. */
  async commit (ops: ReplicaOp[]): Promise<number> {
    return await this.#commits.commit(ops)
  }

  /** A stored result, once every commit made so far is written. */
  async storedResult (index: number): Promise<StoredResult | undefined> {
    await this.#commits.idle()
    return await this.#io.store.result(this.id, index)
  }

  /** Commits the record as the run stands now, with `changes`. */
  async saveRecord (changes: Partial<CampaignRecord> = {}): Promise<number> {
    this.record = this.recordNow(changes)
    return await this.commit([{ op: 'record', record: this.record }])
  }

  /** The record as the run stands now (not committed). */
  recordNow (changes: Partial<CampaignRecord> = {}): CampaignRecord {
    const run = this.run
    return {
      ...this.record,
      state: run.state,
      startedAt: run.startedAt,
      endedAt: run.endedAt,
      shards: run.total,
      done: run.doneCount,
      deadLetters: run.deadLetters(),
      auditHead: this.audit.head,
      term: this.term,
      replicas: this.replicas,
      ...changes
    }
  }

  /**
   * The record ops a lease to `worker` needs first: a new block of epochs
   * when the run has used up its reservation, the worker's name when it is new.
   */
  leaseRecordOps (worker: string, workerName: string): ReplicaOp[] {
    const names = this.record.workerNames ?? {}
    const needEpochs = this.run.epoch > (this.record.epochReserved ?? 0)
    if (!needEpochs && names[worker] === workerName) return []
    this.record = this.recordNow({
      epochReserved: needEpochs ? this.run.epoch + EPOCH_BLOCK : this.record.epochReserved,
      workerNames: { ...names, [worker]: workerName }
    })
    return [{ op: 'record', record: this.record }]
  }

  /** The answer once everything up to `seq` is on enough replicas; the mailbox goes on meanwhile. */
  whenDurable<T> (seq: number, answer: T): T | Later<T> {
    const group = this.group
    if (group == null || group.durableSeq >= seq) return answer
    return new Later(group.durable(seq).then(() => answer))
  }

  /** Shard `index` as a worker gets it: rows shards carry their slice's hash. */
  shard (index: number): Shard {
    const shard = this.run.plan.at(index)
    if (shard.kind !== 'rows') return shard
    const sliceHash = this.record.sliceHashes?.[index]
    if (sliceHash == null) throw new Error(`no slice hash for shard ${index} of ${this.id}`)
    return { ...shard, sliceHash }
  }

  /** Did `peer` hold a lease of this shard, now or before it was re-leased? */
  held (index: number, peer: string): boolean {
    return this.run.lease(index)?.worker === peer || (this.holders.get(index)?.has(peer) ?? false)
  }

  rememberHolder (index: number, worker: string): void {
    const set = this.holders.get(index) ?? new Set<string>()
    this.holders.set(index, set.add(worker))
  }

  /**
   * Leases that ended without an attempt counted (worker lost, silent, or
   * handing back): their holders may still deliver, and the shards are
   * audited as requeued.
   */
  leasesEnded (leases: ReadonlyArray<{ index: number, worker: string }>, reason: string): void {
    for (const l of leases) this.rememberHolder(l.index, l.worker)
    this.requeued(leases.map(l => l.index), reason)
  }

  /** Shards whose leases ended without an attempt counted: audited, and their stored leases removed. */
  requeued (shards: number[], reason: string): void {
    if (shards.length === 0) return
    this.#io.metrics?.leases(this.id, 'requeued', shards.length)
    this.audit.append({ type: 'requeued', shards, reason })
    this.deleteLeases(shards)
  }

  deleteLeases (shards: number[]): void {
    if (shards.length === 0) return
    this.commit([{ op: 'leases', put: [], del: shards }]).catch((err: unknown) => {
      this.#io.log.warn({ campaign: this.id, shards: shards.length, err: describeError(err) }, 'cannot remove ended leases from the store; a restart would wait for them to expire')
    })
  }

  /** What scheduling needs of this campaign now. */
  demand (now: number, cap: number): Demand {
    const group = this.group
    return {
      id: this.id,
      priority: this.spec.priority,
      createdAt: this.run.createdAt,
      requires: this.spec.requires,
      retries: this.run.dueRetries(now, cap),
      fresh: this.run.freshCount(cap),
      inFlight: this.run.leaseCount,
      // fencing: lease only while enough replicas confirm this node is still the campaign's coordinator
      fenced: group != null && !group.leads(now) ? group.describe(now) : undefined
    }
  }

  status (now: number): CampaignStatus {
    const status = liveStatus(this.run, now, this.#io.self, this.runDir)
    const names = new Map(this.#io.peers().map(p => [p.peerId, p.name]))
    for (const [peer, name] of Object.entries(this.record.workerNames ?? {})) if (!names.has(peer)) names.set(peer, name)
    return {
      ...status,
      // the end is reported once what it writes is written
      ...(this.run.finished && !this.reported ? { state: 'RUNNING' as const, endedAt: null } : {}),
      coordinatorName: this.#io.selfName,
      term: this.term,
      replicas: this.replicas,
      replicaNames: this.replicas.map(p => names.get(p) ?? p),
      refusedBy: [...new Set([...this.refusedBy, ...this.group?.refusers ?? []])],
      // replicas that stopped confirming this coordinator may have elected another: say this view may be behind
      ...(this.group != null && !this.run.finished && this.group.hasLed && !this.group.leads(now) ? { stale: true } : {})
    }
  }

  /** The workload's files: what a replica needs to run the campaign itself. */
  files (): BlobRef[] {
    return workloadFiles(this.spec)
  }

  /** Releases the session: replication stops, the audit log is closed, workers lose access to its files. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.group?.close()
    this.#io.blobs.revoke(this.id)
    await this.#commits.idle()
    await this.audit.close().catch((err: unknown) => { this.#io.log.warn({ campaign: this.id, err: describeError(err) }, 'cannot close the audit log') })
  }
}

/** The workload's files: what a replica needs to run the campaign itself. */
export function workloadFiles (spec: CampaignSpec): BlobRef[] {
  const w = spec.workload
  if (w.kind === 'module') return [w.module]
  if (w.kind === 'onnx') return [w.model, w.data.blob, ...(w.reference?.data != null ? [w.reference.data.blob] : [])]
  return []
}

/** The blobs a worker needs for these shards: the workload's files and, for rows, each slice. */
export function shardBlobs (spec: CampaignSpec, shards: readonly Shard[]): string[] {
  const w = spec.workload
  const out: string[] = []
  if (w.kind === 'module') out.push(w.module.hash)
  if (w.kind === 'onnx') {
    out.push(w.model.hash, w.data.blob.hash)
    for (const s of shards) if (s.kind === 'rows') out.push(s.sliceHash)
  }
  return out
}
