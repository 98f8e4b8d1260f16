import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Storage, Sublevel } from '../../node/storage.ts'
import { decode } from '../../protocols/common/codec.ts'
import {
  ReplicaOpsSchema, ReplicaRequestSchema, REPLICA_ACTOR, SnapshotSchema, VoteReplySchema,
  type AppendReply, type ExportReply, type ReplicaOp, type ReplicaRequest, type Snapshot, type SummaryFormat, type VoteReply
} from '../../protocols/campaign/replica.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { CampaignStore } from '../coordinator/store.ts'
import { FINAL_STATES } from '../coordinator/campaign.ts'
import { LEADER_LEASE_MS } from '../coordinator/replication.ts'
import { recordedStatus, type CampaignStatus } from '../coordinator/status.ts'
import { describeError, NotAuthorizedError } from '../runtime/errors.ts'
import { Later, type ActorContext, type ActorDefinition, type Behavior, type MessageMeta } from '../runtime/types.ts'
import { candidacy, decideVote, retryAt, standAt, tally, VOTE_TIMEOUT_MS, won, type Tally } from './election.ts'
import { admit } from './fencing.ts'
import { nextRole, roleOnLoad, type RoleEvent } from './role.ts'
import type { ReplicaMeta, Standing } from './state.ts'

export { REPLICA_ACTOR } from '../../protocols/campaign/replica.ts'

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
  /** the campaign's results from an up-to-date copy here, stored as a blob `peer` may fetch (null: none here) */
  exportFor: (peer: string, id: string, format: 'jsonl' | 'csv') => Promise<ExportReply>
  /** summary.md (or .html) of a campaign this node coordinated and that has ended (null: none here) */
  summaryFor: (id: string, format: SummaryFormat) => Promise<{ text: string } | null>
  /** the audit log of a campaign this node coordinates, as a blob `peer` may fetch (null: none here) */
  auditFor: (peer: string, id: string) => Promise<{ blob: BlobRef, head?: string } | null>
  /** hand a campaign won in an election to the local coordinator */
  takeover: (msg: { id: string, term: number, replicas: string[], previous: string }) => Promise<void>
}

type LocalMessage =
  | { type: 'tick' }
  | { type: 'elected', campaignId: string, term: number, needed: number, tally: Tally }
  | { type: 'files-ready', campaignId: string, ok: boolean, error?: string }
  | { type: 'status', campaignId: string }
  /** the campaigns this node holds a replica of that have not ended (an idle node must not leave them) */
  | { type: 'held' }

export type ReplicaMessage = ReplicaRequest | LocalMessage

const TICK_MS = 500
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
  /** per campaign, beside its copy: role, grant, promise, election timing */
  readonly #standings = new Map<string, Standing>()
  readonly #fetching = new Set<string>()
  /** campaigns whose copy was seen ended, at that copy's seq: not read again until a change moves it */
  readonly #ended = new Map<string, number>()
  readonly #loaded: Promise<void>
  readonly #startedAt: number
  #ticking = false

  constructor (ports: ReplicaPorts, ctx: ActorContext) {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    this.#store = ports.copies
    this.#metaDb = ports.storage.sublevel<ReplicaMeta>('replica-meta')
    this.#startedAt = ctx.now()
    this.#loaded = this.#load()
    ctx.timers.every(TICK_MS, { type: 'tick' })
  }

  async #load (): Promise<void> {
    for await (const meta of this.#metaDb.values()) {
      this.#metas.set(meta.campaignId, meta)
      // a promise made before a restart still holds: wait a whole lease before electing
      this.#standings.set(meta.campaignId, {
        role: roleOnLoad(meta.coordinator, this.#ports.self), grant: { peer: meta.coordinator, until: this.#startedAt + LEADER_LEASE_MS }, seenTerm: 0, eager: false
      })
    }
  }

  /** The one place a role changes. */
  #become (id: string, standing: Standing, event: RoleEvent): void {
    const to = nextRole(standing.role, event)
    if (to == null) return
    this.#log.info({ campaign: id, from: standing.role, to, event }, `replica role: ${to}`)
    standing.role = to
  }

  async receive (msg: ReplicaMessage, meta: MessageMeta): Promise<unknown> {
    await this.#loaded
    const now = this.#ctx.now()
    switch (msg.type) {
      case 'append': return await this.#onAppend(msg, meta.from, now)
      case 'snapshot': return await this.#onSnapshot(msg, meta.from, now)
      case 'vote': return await this.#onVote(msg, now)
      case 'lookup': return await this.#lookup(msg.campaignId)
      // answered when written, the mailbox going on meanwhile: a large export must not hold up the checkpoints
      case 'export': return new Later(this.#ports.exportFor(meta.from, msg.campaignId, msg.format))
      case 'summary': return new Later(this.#ports.summaryFor(msg.campaignId, msg.format ?? 'md'))
      case 'audit': return new Later(this.#ports.auditFor(meta.from, msg.campaignId))
    }
    if (meta.from !== this.#ports.self) return undefined
    switch (msg.type) {
      case 'tick': this.#tick(now); return
      case 'elected': return await this.#onElected(msg)
      case 'files-ready': return await this.#onFilesReady(msg)
      case 'status': return await this.#statusOf(msg.campaignId)
      case 'held': return await this.#held()
    }
  }

  /** Copies this replica keeps for another coordinator (not one it took over) of campaigns that have not ended. */
  async #held (): Promise<string[]> {
    const held: string[] = []
    for (const meta of this.#metas.values()) {
      const id = meta.campaignId
      if (this.#ended.get(id) === meta.seq || this.#standings.get(id)?.role === 'leader' || !meta.members.includes(this.#ports.self)) continue
      const record = await this.#store.campaign(id)
      if (record == null) continue
      if (FINAL_STATES.has(record.state)) this.#ended.set(id, meta.seq)
      else held.push(id)
    }
    return held
  }

  /** A coordinator's append or snapshot, checked (see `admit`): a refusal, or nothing when it may go on. */
  async #admit (msg: { campaignId: string, term: number }, from: string, isSnapshot: boolean, now: number): Promise<AppendReply | undefined> {
    const meta = this.#metas.get(msg.campaignId)
    const standing = this.#standings.get(msg.campaignId)
    if (meta == null || standing == null) {
      if (!isSnapshot) return { ok: false, code: 'no-copy', term: msg.term, seq: 0, snapshot: true }
      if (!this.#ports.isTrusted(from)) throw new NotAuthorizedError(`peer ${from} is not trusted by ${this.#ports.self}; it cannot place a campaign replica here (start this node with --trust ${from})`)
      return undefined
    }
    const { follow, refusal } = admit(meta, standing, msg, from, this.#ports.isTrusted(from), now)
    if (follow) {
      this.#log.info({ campaign: meta.campaignId, coordinator: from, term: msg.term }, 'a new coordinator for a replicated campaign')
      meta.term = msg.term
      meta.coordinator = from
      await this.#metaDb.put(meta.campaignId, meta)
      this.#become(meta.campaignId, standing, 'superseded')
    }
    return refusal
  }

  async #onAppend (msg: Extract<ReplicaRequest, { type: 'append' }>, from: string, receivedAt: number): Promise<AppendReply> {
    const refused = await this.#admit(msg, from, false, receivedAt)
    if (refused != null) return refused
    const meta = this.#metas.get(msg.campaignId)!
    // changes from another coordinator's log may differ from ours past the takeover: start over from its snapshot
    if (meta.logTerm !== msg.term || msg.after > meta.seq) return { ok: false, code: 'gap', term: meta.term, seq: meta.seq, snapshot: true }
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
    this.#confirmed(msg.campaignId, from, receivedAt + msg.leaseMs)
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
    if (!this.#standings.has(meta.campaignId)) this.#standings.set(meta.campaignId, { role: 'follower', seenTerm: 0, eager: false })
    this.#confirmed(msg.campaignId, from, receivedAt + msg.leaseMs)
    if (!meta.filesReady) this.#fetchFiles(meta)
    this.#log.info({ campaign: meta.campaignId, coordinator: from, term: msg.term, seq: msg.seq, results: snapshot.results.length }, 'holding a replica of a campaign')
    return { ok: true, term: meta.term, seq: meta.seq }
  }

  /** This replica confirmed `peer` as the campaign's coordinator, promising until `until` to confirm or elect nobody else. */
  #confirmed (id: string, peer: string, until: number): void {
    const standing = this.#standings.get(id)!
    standing.grant = { peer, until }
    standing.deadSince = undefined
  }

  async #fetchBytes (from: string, ref: BlobRef): Promise<Uint8Array> {
    return await this.#ports.blobs.read(await this.#ports.blobs.fetch(from, ref, AbortSignal.any([this.#ctx.signal, AbortSignal.timeout(60_000)])))
  }

  /** The workload's files, fetched in the background: a replica without them cannot take over. */
  #fetchFiles (meta: ReplicaMeta): void {
    if (this.#fetching.has(meta.campaignId)) return
    this.#fetching.add(meta.campaignId)
    const from = meta.coordinator
    const work = async (): Promise<void> => {
      for (const f of meta.files) await this.#ports.blobs.fetch(from, f, AbortSignal.any([this.#ctx.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]))
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

  /** A candidate asks for this replica's vote (see `decideVote`); a vote granted is kept durably. */
  async #onVote (msg: Extract<ReplicaRequest, { type: 'vote' }>, now: number): Promise<VoteReply> {
    const meta = this.#metas.get(msg.campaignId)
    const standing = this.#standings.get(msg.campaignId)
    if (meta == null || standing == null) return { granted: false, code: 'no-copy', term: msg.term, reason: 'no replica of this campaign here' }
    const decision = decideVote(meta, standing, msg, now)
    standing.seenTerm = decision.seenTerm
    if (decision.eager) standing.eager = true
    if (decision.promise == null) return decision.reply
    meta.votedTerm = msg.term
    meta.votedFor = msg.candidate
    await this.#metaDb.put(meta.campaignId, meta)
    standing.promise = decision.promise
    this.#log.info({ campaign: msg.campaignId, candidate: msg.candidate, term: msg.term }, 'voted for a new coordinator')
    return decision.reply
  }

  #tick (now: number): void {
    if (this.#ticking) return
    const watching = [...this.#metas.values()].some(m => this.#standings.get(m.campaignId)?.role !== 'leader' && m.members.includes(this.#ports.self))
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
      const standing = this.#standings.get(id)
      if (standing == null || standing.role === 'leader' || !meta.members.includes(this.#ports.self)) continue
      if (!meta.filesReady) {
        this.#fetchFiles(meta)
        continue
      }
      const state = states.get(meta.coordinator)
      if (state !== 'dead') {
        standing.deadSince = undefined
        continue
      }
      const record = await this.#store.campaign(id)
      if (record == null || FINAL_STATES.has(record.state)) continue
      standing.deadSince ??= now
      if (now < standAt(standing, standing.deadSince, meta.members.indexOf(this.#ports.self)) || standing.role === 'candidate') continue
      await this.#stand(meta, standing)
    }
  }

  /** Stands for coordinator of a campaign whose coordinator is dead: votes are asked outside the mailbox. */
  async #stand (meta: ReplicaMeta, standing: Standing): Promise<void> {
    const { term, needed, promise, ask } = candidacy(meta.campaignId, meta, standing, this.#ports.self, this.#ctx.now())
    standing.eager = false
    meta.votedTerm = term
    meta.votedFor = this.#ports.self
    await this.#metaDb.put(meta.campaignId, meta)
    standing.promise = promise
    this.#become(meta.campaignId, standing, 'stand')
    const others = meta.members.filter(p => p !== this.#ports.self)
    this.#log.warn({ campaign: meta.campaignId, deadCoordinator: meta.coordinator, term, needed, of: meta.members.length }, 'the coordinator of a replicated campaign is dead; standing for election')
    void Promise.allSettled(others.map(async p => VoteReplySchema.parse(await this.#ctx.ask({ peer: p, name: REPLICA_ACTOR }, ask, { timeoutMs: VOTE_TIMEOUT_MS }))))
      .then(async replies => {
        const counted = tally(term, replies.map(r => r.status === 'fulfilled' ? r.value : undefined))
        await this.#ctx.tell(this.#ctx.self, { type: 'elected', campaignId: meta.campaignId, term, needed, tally: counted })
      })
      .catch(() => {})
  }

  async #onElected (msg: Extract<LocalMessage, { type: 'elected' }>): Promise<void> {
    const meta = this.#metas.get(msg.campaignId)
    const standing = this.#standings.get(msg.campaignId)
    if (meta == null || standing == null) return
    standing.seenTerm = Math.max(standing.seenTerm, msg.tally.higher)
    // asked before a restart of this actor: it stands again when its turn comes
    if (standing.role !== 'candidate') return
    const { votes, behind } = msg.tally
    if (!won(meta, this.#ports.self, msg.term, votes, msg.needed)) {
      standing.promise = undefined
      this.#log.info({ campaign: msg.campaignId, term: msg.term, votes, needed: msg.needed }, 'not elected; will try again if the campaign still has no coordinator')
      standing.nextTry = retryAt(this.#ctx.now(), behind, Math.random())
      this.#become(msg.campaignId, standing, 'lost')
      return
    }
    const snapshot = await this.#store.snapshot(msg.campaignId)
    if (snapshot == null) {
      // the copy is gone: nothing to take over
      this.#become(msg.campaignId, standing, 'lost')
      return
    }
    const previous = meta.coordinator
    const replicas = meta.members.filter(p => p !== this.#ports.self)
    meta.term = msg.term
    standing.promise = undefined
    const record = { ...snapshot.record, runDir: join(this.#ports.runsDir, msg.campaignId), term: msg.term, replicas, auditHead: undefined }
    await this.#ports.main.restore({ ...snapshot, record })
    meta.coordinator = this.#ports.self
    await this.#metaDb.put(meta.campaignId, meta)
    this.#become(msg.campaignId, standing, 'won')
    await this.#store.drop(msg.campaignId)
    this.#log.warn({ campaign: msg.campaignId, term: msg.term, previous, votes }, 'elected coordinator of the campaign; taking it over')
    await this.#ports.takeover({ id: msg.campaignId, term: msg.term, replicas, previous })
  }

  /** What this node knows of a campaign: its own coordinator's view, or its replica copy. */
  async #statusOf (id: string): Promise<CampaignStatus | null> {
    const meta = this.#metas.get(id)
    if (meta == null || this.#standings.get(id)?.role === 'leader') return null
    const record = await this.#store.campaign(id)
    if (record == null) return null
    const status = recordedStatus(record, meta.coordinator)
    // a copy that has not reached the end may be behind: only the coordinator's answer is the live one
    return FINAL_STATES.has(status.state)
      ? { ...status, waiting: null }
      : { ...status, stale: true, waiting: `as replicated to this node (coordinator ${meta.coordinator}, term ${meta.term}); it may be behind` }
  }

  async #lookup (id: string): Promise<CampaignStatus | null> {
    return await this.#ports.localStatus(id) ?? await this.#statusOf(id)
  }
}
