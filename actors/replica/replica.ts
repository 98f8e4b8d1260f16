import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Storage, Sublevel } from '../../node/storage.ts'
import { decode } from '../../protocols/common/codec.ts'
import {
  ReplicaOpsSchema, ReplicaRequestSchema, REPLICA_ACTOR, SnapshotSchema, VoteReplySchema,
  type AppendReply, type ReplicaOp, type ReplicaRequest, type Snapshot, type VoteReply
} from '../../protocols/campaign/replica.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { CampaignStore } from '../coordinator/store.ts'
import { FINAL_STATES } from '../coordinator/campaign.ts'
import { LEADER_LEASE_MS, quorums } from '../coordinator/replication.ts'
import { recordedStatus, type CampaignStatus } from '../coordinator/status.ts'
import { describeError, NotAuthorizedError } from '../runtime/errors.ts'
import { Later, type ActorContext, type ActorDefinition, type Behavior, type MessageMeta } from '../runtime/types.ts'

export { REPLICA_ACTOR } from '../../protocols/campaign/replica.ts'

/** What a replica keeps about each campaign it holds a copy of. */
export interface ReplicaMeta {
  campaignId: string
  /** the term of the coordinator this replica follows: raised only when a coordinator of a higher term reaches it (fencing) */
  term: number
  /** the term of the coordinator whose changes the copy holds */
  logTerm: number
  /** the last change applied */
  seq: number
  coordinator: string
  members: string[]
  /** the last election this replica voted in, and for whom (one vote a term) */
  votedTerm?: number
  votedFor?: string
  files: BlobRef[]
  /** the workload's files are here: this replica can take over */
  filesReady: boolean
  /** this node took the campaign over: its own coordinator runs it now */
  adopted?: boolean
}

export interface ReplicaPorts {
  self: string
  storage: Storage
  /** where the copies are kept (apart from the node's own campaigns) */
  copies: CampaignStore
  /** the node's own campaigns: where a campaign taken over goes */
  main: CampaignStore
  runsDir: string
  isTrusted: (peer: string) => boolean
  /** a peer's state as this node's membership sees it (undefined: unknown) */
  peerState: () => Promise<Map<string, string>>
  blobs: {
    /** fetch a blob from `peer` into this node's store; the local path */
    fetch: (peer: string, ref: BlobRef, signal: AbortSignal) => Promise<string>
    read: (path: string) => Promise<Uint8Array>
  }
  /** the local coordinator's status of a campaign it runs (null: it does not) */
  localStatus: (id: string) => Promise<CampaignStatus | null>
  /** the campaign's results as this node holds them, stored as a blob `peer` may fetch (null: not held here) */
  exportFor: (peer: string, id: string, format: 'jsonl' | 'csv') => Promise<BlobRef | null>
  /** hand a campaign won in an election to the local coordinator */
  takeover: (msg: { id: string, term: number, replicas: string[], previous: string }) => Promise<void>
}

type LocalMessage =
  | { type: 'tick' }
  | { type: 'elected', campaignId: string, term: number, votes: number, needed: number, higher: number, behind: boolean }
  | { type: 'files-ready', campaignId: string, ok: boolean, error?: string }
  | { type: 'status', campaignId: string }

export type ReplicaMessage = ReplicaRequest | LocalMessage

const TICK_MS = 500
/** replicas stand for election one after another, in their order in the member list */
const ELECTION_STAGGER_MS = 1000
/**
 * A candidate stands this long after its own promise to the dead coordinator
 * ran out: the other replicas heard from it a little later than this one
 * did, and refuse to vote until their promises run out too.
 */
const ELECTION_MARGIN_MS = 300
const VOTE_TIMEOUT_MS = 3000
const FETCH_TIMEOUT_MS = 10 * 60_000

/**
 * The checkpoint-replica actor: keeps copies of other coordinators' campaign
 * state (applied in order, fenced by term), promises each coordinator not to
 * vote for a rival while its lease is in force, votes in elections, and —
 * when a campaign's coordinator is dead, its lease is over and the other
 * replicas agree — takes the campaign over for this node's coordinator.
 */
export function replicaActor (ports: ReplicaPorts): ActorDefinition<ReplicaMessage> {
  return {
    // appends come from coordinators this node may not trust directly (a replica that took over): checked per campaign
    access: 'public',
    schema: ReplicaRequestSchema as never,
    mailboxSize: 4096,
    create: (ctx) => new Replica(ports, ctx)
  }
}

class Replica implements Behavior<ReplicaMessage> {
  readonly #ports: ReplicaPorts
  readonly #ctx: ActorContext
  readonly #log: Logger
  readonly #store: CampaignStore
  readonly #metaDb: Sublevel<ReplicaMeta>
  readonly #metas = new Map<string, ReplicaMeta>()
  /** the coordinator this replica last confirmed, and until when it promised not to confirm or elect another */
  readonly #grants = new Map<string, { peer: string, until: number }>()
  /** a vote given: until then this replica confirms no other coordinator, so the candidate can win safely */
  readonly #promises = new Map<string, { candidate: string, term: number, until: number }>()
  readonly #deadSince = new Map<string, number>()
  readonly #nextTry = new Map<string, number>()
  readonly #electing = new Set<string>()
  /** the highest term candidates have asked for (kept apart from `term`, which fences coordinators) */
  readonly #seenTerms = new Map<string, number>()
  /** campaigns where this replica turned down a candidate with an older copy: it stands next, without waiting its turn */
  readonly #eager = new Set<string>()
  readonly #fetching = new Set<string>()
  readonly #timer: ReturnType<typeof setInterval>
  readonly #loaded: Promise<void>
  readonly #startedAt = Date.now()
  #ticking = false

  constructor (ports: ReplicaPorts, ctx: ActorContext) {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    this.#store = ports.copies
    this.#metaDb = ports.storage.sublevel<ReplicaMeta>('replica-meta')
    this.#loaded = this.#load()
    this.#timer = setInterval(() => { void ctx.tell(ctx.self, { type: 'tick' }).catch(() => {}) }, TICK_MS)
  }

  stopped (): void {
    clearInterval(this.#timer)
  }

  async #load (): Promise<void> {
    for await (const meta of this.#metaDb.values()) {
      this.#metas.set(meta.campaignId, meta)
      // a promise made before a restart still holds: wait a whole lease before electing
      this.#grants.set(meta.campaignId, { peer: meta.coordinator, until: this.#startedAt + LEADER_LEASE_MS })
    }
  }

  async receive (msg: ReplicaMessage, meta: MessageMeta): Promise<unknown> {
    await this.#loaded
    const now = Date.now()
    switch (msg.type) {
      case 'append': return await this.#onAppend(msg, meta.from, now)
      case 'snapshot': return await this.#onSnapshot(msg, meta.from, now)
      case 'vote': return await this.#onVote(msg, now)
      case 'lookup': return await this.#lookup(msg.campaignId)
      // answered when written, the mailbox going on meanwhile: a large export must not hold up the checkpoints
      case 'export': return new Later(this.#ports.exportFor(meta.from, msg.campaignId, msg.format).then(blob => blob != null ? { blob } : null))
    }
    if (meta.from !== this.#ports.self) return undefined
    switch (msg.type) {
      case 'tick': this.#tick(now); return
      case 'elected': return await this.#onElected(msg)
      case 'files-ready': return await this.#onFilesReady(msg)
      case 'status': return await this.#statusOf(msg.campaignId)
    }
  }

  /**
   * Checks a coordinator's message against what this replica knows; a
   * refusal, or nothing when it may go on. Fencing: a lower term is refused
   * (the sender learns it was replaced); a higher term is followed at once,
   * but confirmed only once this replica's promise to the coordinator before
   * it has run out; and while a vote it gave is in force, nobody else is
   * confirmed. So no two coordinators ever hold its confirmation at once.
   */
  async #admit (msg: { campaignId: string, term: number, members: string[] }, from: string, isSnapshot: boolean, now: number): Promise<AppendReply | undefined> {
    const meta = this.#metas.get(msg.campaignId)
    if (meta == null) {
      if (!isSnapshot) return { ok: false, term: msg.term, seq: 0, snapshot: true }
      if (!this.#ports.isTrusted(from)) throw new NotAuthorizedError(`peer ${from} is not trusted by ${this.#ports.self}; it cannot place a campaign replica here (start this node with --trust ${from})`)
      return undefined
    }
    const refuse = (reason: string): AppendReply => ({ ok: false, term: meta.term, seq: meta.seq, coordinator: meta.coordinator, reason })
    // not now: said with the sender's own term, so it is not taken for a takeover
    const notNow = (reason: string): AppendReply => ({ ok: false, term: Math.min(meta.term, msg.term), seq: meta.seq, reason })
    if (msg.term < meta.term) return refuse(`superseded: term ${meta.term} belongs to ${meta.coordinator}`)
    if (msg.term === meta.term && meta.coordinator !== from) return refuse(`term ${msg.term} belongs to another coordinator`)
    const promise = this.#promises.get(msg.campaignId)
    if (promise != null && promise.until > now && promise.candidate !== from && promise.term > msg.term) return notNow(`voted for ${promise.candidate} in term ${promise.term}; confirming nobody else until that election ends`)
    if (msg.term > meta.term) {
      if (from !== meta.coordinator && !meta.members.includes(from) && !this.#ports.isTrusted(from)) return refuse('not a replica of this campaign')
      this.#log.info({ campaign: meta.campaignId, coordinator: from, term: msg.term }, 'a new coordinator for a replicated campaign')
      meta.term = msg.term
      meta.coordinator = from
      meta.adopted = undefined
      await this.#metaDb.put(meta.campaignId, meta)
    }
    const grant = this.#grants.get(msg.campaignId)
    if (grant != null && grant.peer !== from && grant.until > now) return notNow(`the previous coordinator's lease runs for ${grant.until - now} ms more`)
    return undefined
  }

  async #onAppend (msg: Extract<ReplicaRequest, { type: 'append' }>, from: string, receivedAt: number): Promise<AppendReply> {
    const refused = await this.#admit(msg, from, false, receivedAt)
    if (refused != null) return refused
    const meta = this.#metas.get(msg.campaignId)!
    // changes from another coordinator's log may differ from ours past the takeover: start over from its snapshot
    if (meta.logTerm !== msg.term || msg.after > meta.seq) return { ok: false, term: meta.term, seq: meta.seq, snapshot: true }
    const ops: ReplicaOp[] = msg.blob != null
      ? ReplicaOpsSchema.parse(decode(await this.#fetchBytes(from, msg.blob)))
      : ReplicaOpsSchema.parse((msg.packed ?? []).map(bytes => decode(bytes)))
    const fresh = ops.slice(meta.seq - msg.after)
    if (fresh.length > 0 || msg.seq > meta.seq) {
      const next: ReplicaMeta = { ...meta, seq: Math.max(meta.seq, msg.seq), members: msg.members }
      await this.#store.apply(msg.campaignId, fresh, [{ sublevel: this.#metaDb as Sublevel<unknown>, key: meta.campaignId, value: next }])
      this.#metas.set(meta.campaignId, next)
    } else if (msg.members.join() !== meta.members.join()) {
      meta.members = msg.members
      await this.#metaDb.put(meta.campaignId, meta)
    }
    this.#grants.set(msg.campaignId, { peer: from, until: receivedAt + msg.leaseMs })
    this.#deadSince.delete(msg.campaignId)
    return { ok: true, term: meta.term, seq: this.#metas.get(msg.campaignId)!.seq }
  }

  async #onSnapshot (msg: Extract<ReplicaRequest, { type: 'snapshot' }>, from: string, receivedAt: number): Promise<AppendReply> {
    const refused = await this.#admit(msg, from, true, receivedAt)
    if (refused != null) return refused
    const snapshot: Snapshot = SnapshotSchema.parse(decode(await this.#fetchBytes(from, msg.blob)))
    if (snapshot.record.id !== msg.campaignId) throw new Error(`snapshot of ${snapshot.record.id} sent as ${msg.campaignId}`)
    const before = this.#metas.get(msg.campaignId)
    const sameFiles = before != null && before.filesReady && JSON.stringify(before.files) === JSON.stringify(msg.files)
    const meta: ReplicaMeta = {
      campaignId: msg.campaignId, term: msg.term, logTerm: msg.term, seq: msg.seq, coordinator: from, members: msg.members, files: msg.files, filesReady: sameFiles,
      votedTerm: before?.votedTerm, votedFor: before?.votedFor
    }
    await this.#store.restore(snapshot, [{ sublevel: this.#metaDb as Sublevel<unknown>, key: meta.campaignId, value: meta }])
    this.#metas.set(meta.campaignId, meta)
    this.#grants.set(msg.campaignId, { peer: from, until: receivedAt + msg.leaseMs })
    this.#deadSince.delete(msg.campaignId)
    if (!meta.filesReady) this.#fetchFiles(meta)
    this.#log.info({ campaign: meta.campaignId, coordinator: from, term: msg.term, seq: msg.seq, results: snapshot.results.length }, 'holding a replica of a campaign')
    return { ok: true, term: meta.term, seq: meta.seq }
  }

  async #fetchBytes (from: string, ref: BlobRef): Promise<Uint8Array> {
    return await this.#ports.blobs.read(await this.#ports.blobs.fetch(from, ref, AbortSignal.timeout(60_000)))
  }

  /** The workload's files, fetched in the background: a replica without them cannot take over. */
  #fetchFiles (meta: ReplicaMeta): void {
    if (this.#fetching.has(meta.campaignId)) return
    this.#fetching.add(meta.campaignId)
    const from = meta.coordinator
    const work = async (): Promise<void> => {
      for (const f of meta.files) await this.#ports.blobs.fetch(from, f, AbortSignal.timeout(FETCH_TIMEOUT_MS))
    }
    work().then(
      async () => { await this.#ctx.tell(this.#ctx.self, { type: 'files-ready', campaignId: meta.campaignId, ok: true }) },
      async (err: unknown) => { await this.#ctx.tell(this.#ctx.self, { type: 'files-ready', campaignId: meta.campaignId, ok: false, error: describeError(err) }) }
    ).catch(() => {}).finally(() => { this.#fetching.delete(meta.campaignId) })
  }

  async #onFilesReady (msg: Extract<LocalMessage, { type: 'files-ready' }>): Promise<void> {
    const meta = this.#metas.get(msg.campaignId)
    if (meta == null) return
    if (!msg.ok) {
      this.#log.warn({ campaign: msg.campaignId, err: msg.error }, 'cannot fetch the workload files of a replicated campaign; will retry')
      return
    }
    meta.filesReady = true
    await this.#metaDb.put(meta.campaignId, meta)
  }

  /**
   * One vote a term, for a replica of the campaign whose copy is at least as
   * new as this one, and only when this replica's promise to the coordinator
   * has run out. The vote is itself a promise: for a lease, this replica
   * confirms nobody else, so the candidate can take over without a rival.
   */
  async #onVote (msg: Extract<ReplicaRequest, { type: 'vote' }>, now: number): Promise<VoteReply> {
    const meta = this.#metas.get(msg.campaignId)
    if (meta == null) return { granted: false, term: msg.term, reason: 'no replica of this campaign here' }
    const refuse = (reason: string): VoteReply => ({ granted: false, term: Math.max(meta.term, meta.votedTerm ?? 0), reason })
    if (!meta.members.includes(msg.candidate)) return refuse('the candidate is not a replica of this campaign')
    this.#seenTerms.set(msg.campaignId, Math.max(this.#seenTerms.get(msg.campaignId) ?? 0, msg.term))
    if (msg.term <= meta.term) return refuse(`term ${meta.term} already has a coordinator`)
    if (meta.votedTerm != null && (msg.term < meta.votedTerm || (msg.term === meta.votedTerm && meta.votedFor !== msg.candidate))) return refuse(`already voted in term ${meta.votedTerm}`)
    const grant = this.#grants.get(msg.campaignId)
    if (grant != null && grant.until > now && grant.peer !== msg.candidate) return refuse(`the coordinator ${grant.peer} confirmed itself less than a lease ago`)
    if (msg.lastTerm < meta.logTerm || (msg.lastTerm === meta.logTerm && msg.seq < meta.seq)) {
      this.#eager.add(msg.campaignId)
      return refuse(`the candidate's copy (term ${msg.lastTerm}, seq ${msg.seq}) is behind this one (term ${meta.logTerm}, seq ${meta.seq})`)
    }
    meta.votedTerm = msg.term
    meta.votedFor = msg.candidate
    await this.#metaDb.put(meta.campaignId, meta)
    this.#promises.set(msg.campaignId, { candidate: msg.candidate, term: msg.term, until: now + LEADER_LEASE_MS })
    this.#log.info({ campaign: msg.campaignId, candidate: msg.candidate, term: msg.term }, 'voted for a new coordinator')
    return { granted: true, term: msg.term }
  }

  #tick (now: number): void {
    if (this.#ticking) return
    const watching = [...this.#metas.values()].some(m => m.adopted !== true && m.coordinator !== this.#ports.self && m.members.includes(this.#ports.self))
    if (!watching) return
    this.#ticking = true
    this.#ports.peerState()
      .then(async states => { await this.#checkCoordinators(states, now) })
      .catch((err: unknown) => { this.#log.debug({ err: describeError(err) }, 'replica tick failed') })
      .finally(() => { this.#ticking = false })
  }

  async #checkCoordinators (states: Map<string, string>, now: number): Promise<void> {
    for (const meta of this.#metas.values()) {
      const id = meta.campaignId
      if (meta.adopted === true || meta.coordinator === this.#ports.self || !meta.members.includes(this.#ports.self)) continue
      if (!meta.filesReady) {
        this.#fetchFiles(meta)
        continue
      }
      const state = states.get(meta.coordinator)
      if (state !== 'dead') {
        this.#deadSince.delete(id)
        continue
      }
      const record = await this.#store.campaign(id)
      if (record == null || FINAL_STATES.has(record.state)) continue
      if (!this.#deadSince.has(id)) this.#deadSince.set(id, now)
      const order = meta.members.indexOf(this.#ports.self)
      // the first in member order stands first; the next only if that one has not won a stagger later
      const stagger = this.#eager.has(id) ? 0 : order * ELECTION_STAGGER_MS
      const promise = this.#promises.get(id)
      const standAt = Math.max(Math.max(this.#deadSince.get(id)!, (this.#grants.get(id)?.until ?? 0) + ELECTION_MARGIN_MS) + stagger, this.#nextTry.get(id) ?? 0, promise?.until ?? 0)
      if (now < standAt || this.#electing.has(id)) continue
      await this.#stand(meta)
    }
  }

  /** Stands for coordinator of a campaign whose coordinator is dead: votes are asked outside the mailbox. */
  async #stand (meta: ReplicaMeta): Promise<void> {
    const term = Math.max(meta.term, meta.votedTerm ?? 0, this.#seenTerms.get(meta.campaignId) ?? 0) + 1
    this.#eager.delete(meta.campaignId)
    meta.votedTerm = term
    meta.votedFor = this.#ports.self
    await this.#metaDb.put(meta.campaignId, meta)
    this.#promises.set(meta.campaignId, { candidate: this.#ports.self, term, until: Date.now() + LEADER_LEASE_MS + VOTE_TIMEOUT_MS })
    this.#electing.add(meta.campaignId)
    const others = meta.members.filter(p => p !== this.#ports.self)
    const needed = quorums(meta.members.length).elect
    this.#log.warn({ campaign: meta.campaignId, deadCoordinator: meta.coordinator, term, needed, of: meta.members.length }, 'the coordinator of a replicated campaign is dead; standing for election')
    const ask: ReplicaRequest = { type: 'vote', campaignId: meta.campaignId, term, candidate: this.#ports.self, lastTerm: meta.logTerm, seq: meta.seq }
    void Promise.allSettled(others.map(async p => VoteReplySchema.parse(await this.#ctx.ask({ peer: p, name: REPLICA_ACTOR }, ask, { timeoutMs: VOTE_TIMEOUT_MS }))))
      .then(async replies => {
        let votes = 1
        let higher = term
        let behind = false
        for (const r of replies) {
          if (r.status !== 'fulfilled') continue
          if (r.value.granted) votes++
          if (r.value.reason?.includes('behind') === true) behind = true
          higher = Math.max(higher, r.value.term)
        }
        await this.#ctx.tell(this.#ctx.self, { type: 'elected', campaignId: meta.campaignId, term, votes, needed, higher, behind })
      })
      .catch(() => {})
  }

  async #onElected (msg: Extract<LocalMessage, { type: 'elected' }>): Promise<void> {
    this.#electing.delete(msg.campaignId)
    const meta = this.#metas.get(msg.campaignId)
    if (meta == null) return
    this.#seenTerms.set(msg.campaignId, Math.max(this.#seenTerms.get(msg.campaignId) ?? 0, msg.higher))
    if (msg.votes < msg.needed || meta.term >= msg.term || meta.votedTerm !== msg.term || meta.votedFor !== this.#ports.self) {
      this.#promises.delete(msg.campaignId)
      this.#log.info({ campaign: msg.campaignId, term: msg.term, votes: msg.votes, needed: msg.needed }, 'not elected; will try again if the campaign still has no coordinator')
      // a replica with a newer copy turned this one down: it stands next, so give it room
      this.#nextTry.set(msg.campaignId, Date.now() + ELECTION_STAGGER_MS * ((msg.behind ? 3 : 1) + Math.random() * 2))
      return
    }
    const snapshot = await this.#store.snapshot(msg.campaignId)
    if (snapshot == null) return
    const previous = meta.coordinator
    const replicas = meta.members.filter(p => p !== this.#ports.self)
    meta.term = msg.term
    this.#promises.delete(msg.campaignId)
    const record = { ...snapshot.record, runDir: join(this.#ports.runsDir, msg.campaignId), term: msg.term, replicas, auditHead: undefined }
    await this.#ports.main.restore({ ...snapshot, record })
    meta.coordinator = this.#ports.self
    meta.adopted = true
    await this.#metaDb.put(meta.campaignId, meta)
    await this.#store.drop(msg.campaignId)
    this.#log.warn({ campaign: msg.campaignId, term: msg.term, previous, votes: msg.votes }, 'elected coordinator of the campaign; taking it over')
    await this.#ports.takeover({ id: msg.campaignId, term: msg.term, replicas, previous })
  }

  /** What this node knows of a campaign: its own coordinator's view, or its replica copy. */
  async #statusOf (id: string): Promise<CampaignStatus | null> {
    const meta = this.#metas.get(id)
    if (meta == null || meta.adopted === true) return null
    const record = await this.#store.campaign(id)
    if (record == null) return null
    const status = recordedStatus(record, meta.coordinator)
    return { ...status, waiting: FINAL_STATES.has(status.state) ? null : `as replicated to this node (coordinator ${meta.coordinator}, term ${meta.term})` }
  }

  async #lookup (id: string): Promise<CampaignStatus | null> {
    return await this.#ports.localStatus(id) ?? await this.#statusOf(id)
  }
}
