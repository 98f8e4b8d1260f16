import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { verifyAudit, type AuditVerdict } from '../../actors/coordinator/audit.ts'
import { COORDINATOR_ACTOR, type CoordinatorMessage } from '../../actors/coordinator/coordinator.ts'
import { isFinal } from '../../actors/coordinator/states.ts'
import { recordedStatus } from '../../actors/coordinator/status.ts'
import type { CampaignRecord, CampaignStore } from '../../actors/coordinator/store.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { REPLICA_ACTOR, type ReplicaMessage } from '../../actors/replica/replica.ts'
import { describeError, UnavailableError } from '../../actors/runtime/errors.ts'
import type { ActorHost } from '../../actors/runtime/host.ts'
import { AuditReplySchema, ExportReplySchema, LookupReplySchema, SummaryReplySchema, type ExportReply, type SummaryFormat } from '../../protocols/campaign/replica.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { CampaignState, CampaignStatus } from '../../protocols/campaign/status.ts'
import type { BlobAccess } from '../blobs/access.ts'
import type { BlobService } from '../blobs/service.ts'
import { exportResults, type ExportFormat } from './export.ts'

/** a local ask (this node's coordinator or replica actor) */
const LOCAL_TIMEOUT_MS = 5_000
/** asking the peers what they know: a cut-off node answers from what it knows after this */
const LOOKUP_TIMEOUT_MS = 3_000
/** asking a peer for a campaign's results or audit log, and fetching them */
const EXPORT_TIMEOUT_MS = 120_000

/**
 * Which of this node's copies of a campaign may answer for it:
 * - `coordinator`: this node coordinates it (its own record, not taken over): the live view;
 * - `final-copy`: a replica whose copy reached the campaign's end: complete, since the
 *   final record is the last change the coordinator sends;
 * - `stale-copy`: a replica copy from before the end: it may be behind (the replica was
 *   cut off, paused, or killed and replaced);
 * - `deposed`: this node coordinated it until a replica took it over: behind by design.
 */
export type CopyKind = 'coordinator' | 'final-copy' | 'stale-copy' | 'deposed'

export function copyKind (own: CampaignRecord | undefined, copy: CampaignRecord | undefined): CopyKind | undefined {
  if (own != null && own.movedTo == null) return 'coordinator'
  if (copy != null) return isFinal(copy.state) ? 'final-copy' : 'stale-copy'
  return own != null ? 'deposed' : undefined
}

/** `zp results` of a campaign that has not succeeded, without --partial. */
export class NotEndedError extends Error {
  override name = 'NotEndedError'
}

export interface ResultsAnswer {
  rows: AsyncIterable<string>
  state: CampaignState
  done: number
  total: number
  /** read from a copy that may be behind (only with --partial, when no up-to-date copy answered) */
  stale: boolean
}

export interface LookupInit {
  self: string
  host: ActorHost
  /** this node's own campaigns, and its replica copies of others' */
  store: CampaignStore
  copies: CampaignStore
  peers: () => Promise<PeerView[]>
  blobs: BlobService
  access: BlobAccess
  log: Logger
}

/**
 * Status, results, summary and audit of a campaign from any node, answered
 * only from an up-to-date copy: this node's own coordinator, or a replica copy
 * that reached the campaign's end; otherwise from the peer that has one (the
 * coordinator first), and failing that, status from what this node knows,
 * marked possibly stale, and results refused naming where to ask. The other
 * half, serving peers' requests, is here too.
 */
export class CampaignLookup {
  readonly #init: LookupInit
  /** offers made for peers: how many are out per blob (the blob goes when none is) */
  readonly #offered = new Map<string, number>()
  #offers = 0

  constructor (init: LookupInit) {
    this.#init = init
  }

  async #kind (id: string): Promise<{ kind: CopyKind | undefined, own?: CampaignRecord, copy?: CampaignRecord }> {
    const own = await this.#init.store.campaign(id)
    const copy = await this.#init.copies.campaign(id)
    return { kind: copyKind(own, copy), own, copy }
  }

  /**
   * This node's coordinator's view (null when it does not coordinate the
   * campaign). A coordinator too busy to answer in time is answered for from
   * its record, marked as possibly behind, rather than left to hang the caller.
   */
  async #coordinatorView (id: string): Promise<CampaignStatus | null> {
    try {
      return await this.#init.host.ask<CampaignStatus | null>({ peer: this.#init.self, name: COORDINATOR_ACTOR }, { type: 'status', id } satisfies CoordinatorMessage, { timeoutMs: LOCAL_TIMEOUT_MS })
    } catch (err) {
      if ((err as Error).name !== 'AskTimeoutError') throw err
      const own = await this.#init.store.campaign(id)
      if (own == null || own.movedTo != null) return null
      return { ...recordedStatus(own, this.#init.self), stale: true, waiting: `possibly behind: as last stored; this node's coordinator did not answer within ${LOCAL_TIMEOUT_MS} ms` }
    }
  }

  /** What this node itself knows: its coordinator's view, else its replica copy's (marked stale unless ended). */
  async localView (id: string): Promise<CampaignStatus | null> {
    return await this.#coordinatorView(id) ??
      await this.#init.host.ask<CampaignStatus | null>({ peer: this.#init.self, name: REPLICA_ACTOR }, { type: 'status', campaignId: id } satisfies ReplicaMessage, { timeoutMs: LOCAL_TIMEOUT_MS })
  }

  async status (id: string): Promise<CampaignStatus | null> {
    const local = await this.localView(id)
    if (local != null && local.stale !== true) return local
    const remote = await this.#askPeers(id)
    const live = remote.find(r => r.status.coordinator === r.from && r.status.stale !== true) ?? remote.find(r => r.status.stale !== true)
    if (live != null) return live.status
    if (local != null) return this.#unconfirmed(local, remote.length)
    // what the other copies hold: the newest coordinator's, the furthest along
    const best = remote.map(r => r.status).sort((a, b) => (b.term ?? 0) - (a.term ?? 0) || b.shards.done - a.shards.done)[0]
    return best != null ? this.#unconfirmed(best, remote.length) : null
  }

  /** What this node knows, marked as possibly behind, and why. */
  #unconfirmed (status: CampaignStatus, answered: number): CampaignStatus {
    const where = status.coordinatorName ?? status.coordinator
    const nobody = answered > 0 ? '' : ' (no peer answered)'
    const waiting = status.coordinator === this.#init.self
      ? `possibly behind: this node coordinates it, but its replicas stopped confirming it${nobody}; if they were cut off from it, one of them may run it now`
      : `possibly behind: as last replicated to this node; the coordinator ${where} did not answer${nobody}; ask on its node for the live state`
    return { ...status, stale: true, waiting }
  }

  async #askPeers (id: string): Promise<Array<{ from: string, status: CampaignStatus }>> {
    const peers = (await this.#init.peers().catch(() => [])).filter(p => !p.self && p.state !== 'dead')
    const answers = await Promise.allSettled(peers.map(async p => LookupReplySchema.parse(await this.#init.host.ask(
      { peer: p.peerId, name: REPLICA_ACTOR }, { type: 'lookup', campaignId: id } satisfies ReplicaMessage, { timeoutMs: LOOKUP_TIMEOUT_MS }))))
    return answers.flatMap((a, i) => a.status === 'fulfilled' && a.value != null ? [{ from: peers[i]!.peerId, status: a.value }] : [])
  }

  async results (id: string, format: ExportFormat, opts: { partial?: boolean } = {}): Promise<ResultsAnswer | null> {
    const partial = opts.partial === true
    const { kind, own, copy } = await this.#kind(id)
    if (kind === 'coordinator') {
      const status = await this.#coordinatorView(id)
      return checked(id, { rows: exportResults(this.#init.store, id, format), state: status?.state ?? own!.state, done: status?.shards.done ?? own!.done, total: own!.shards, stale: false }, partial)
    }
    if (kind === 'final-copy') return checked(id, { rows: exportResults(this.#init.copies, id, format), state: copy!.state, done: copy!.done, total: copy!.shards, stale: false }, partial)
    const status = await this.status(id)
    if (status == null) return null
    if (status.stale !== true && status.state !== 'SUCCEEDED' && !partial) throw notEnded(id, status.state, status.shards.done, status.shards.total)
    const holders = [...new Set([status.coordinator, ...status.replicas ?? []])].filter(p => p !== this.#init.self)
    const failures: string[] = []
    for (const peer of holders) {
      try {
        const reply = ExportReplySchema.parse(await this.#init.host.ask({ peer, name: REPLICA_ACTOR }, { type: 'export', campaignId: id, format } satisfies ReplicaMessage, { timeoutMs: EXPORT_TIMEOUT_MS }))
        if (reply == null) {
          failures.push(`${peer}: holds no up-to-date copy`)
          continue
        }
        if (reply.state !== 'SUCCEEDED' && !partial) throw notEnded(id, reply.state, reply.done, reply.total)
        const path = await this.#init.blobs.fetch(peer, { hash: reply.blob.hash, size: reply.blob.size, name: reply.blob.name }, { signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS) })
        return { rows: readThenRemove(path, async () => { await this.#init.blobs.store.remove(reply.blob.hash) }), state: reply.state, done: reply.done, total: reply.total, stale: false }
      } catch (err) {
        if (err instanceof NotEndedError) throw err
        failures.push(`${peer}: ${describeError(err)}`)
      }
    }
    const behind = kind === 'stale-copy' ? this.#init.copies : kind === 'deposed' ? this.#init.store : undefined
    const record = kind === 'stale-copy' ? copy : own
    if (partial && behind != null && record != null) return { rows: exportResults(behind, id, format), state: record.state, done: record.done, total: record.shards, stale: true }
    throw new UnavailableError(`campaign ${id} is coordinated by ${status.coordinatorName ?? status.coordinator}, and no peer with an up-to-date copy sent its results (${failures.join('; ') || 'no other peer holds it'})${kind != null ? '; this node\'s own copy may be behind, so it is not used' : ''}; try again, or run zp results on the coordinator's node`)
  }

  /** summary.md (or summary.html) of an ended campaign, from the node that wrote it; null when unknown or not ended. */
  async summary (id: string, format: SummaryFormat = 'md'): Promise<string | null> {
    const { kind } = await this.#kind(id)
    if (kind === 'coordinator') return await this.summaryFor(id, format).then(r => r?.text ?? null)
    const status = await this.status(id)
    if (status == null || !isFinal(status.state)) return null
    try {
      const reply = SummaryReplySchema.parse(await this.#init.host.ask({ peer: status.coordinator, name: REPLICA_ACTOR }, { type: 'summary', campaignId: id, format } satisfies ReplicaMessage, { timeoutMs: EXPORT_TIMEOUT_MS }))
      return reply?.text ?? null
    } catch (err) {
      throw new UnavailableError(`the summary of ${id} is on its coordinator ${status.coordinatorName ?? status.coordinator}, which did not send it (${describeError(err)}); try again, or run zp summary on that node`)
    }
  }

  /**
   * Verifies the campaign's audit log: here when this node coordinates it,
   * else fetched from the coordinator and checked against the head this
   * node's own copy of the record names (when it has one that ended).
   */
  async auditVerify (id: string): Promise<(AuditVerdict & { from?: string }) | null> {
    const { kind, own, copy } = await this.#kind(id)
    if (kind === 'coordinator') return await verifyAudit(join(own!.runDir, 'audit.jsonl'), isFinal(own!.state) ? own!.auditHead : undefined)
    const status = await this.status(id)
    if (status == null) return null
    let blob: BlobRef | undefined
    try {
      const reply = AuditReplySchema.parse(await this.#init.host.ask({ peer: status.coordinator, name: REPLICA_ACTOR }, { type: 'audit', campaignId: id } satisfies ReplicaMessage, { timeoutMs: EXPORT_TIMEOUT_MS }))
      if (reply == null) throw new Error('it holds no audit log of the campaign')
      blob = reply.blob
      const path = await this.#init.blobs.fetch(status.coordinator, { hash: blob.hash, size: blob.size, name: blob.name }, { signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS) })
      const head = kind === 'final-copy' ? copy!.auditHead : reply.head
      return { ...await verifyAudit(path, head), from: status.coordinator }
    } catch (err) {
      throw new UnavailableError(`the audit log of ${id} is on its coordinator ${status.coordinatorName ?? status.coordinator}, which did not send it (${describeError(err)}); try again, or run zp audit verify on that node`)
    } finally {
      if (blob != null) await this.#init.blobs.store.remove(blob.hash).catch(() => {})
    }
  }

  /** For a peer: the results, made into a blob it may fetch, from an up-to-date copy only. */
  async exportFor (peer: string, id: string, format: ExportFormat): Promise<ExportReply> {
    const { kind, own, copy } = await this.#kind(id)
    if (kind !== 'coordinator' && kind !== 'final-copy') return null
    const status = kind === 'coordinator' ? await this.#coordinatorView(id) : null
    const record = (kind === 'coordinator' ? own : copy)!
    const blob = await this.#offer(peer, await this.#init.blobs.store.putStream(utf8Chunks(exportResults(kind === 'coordinator' ? this.#init.store : this.#init.copies, id, format)), `${id}.${format}`))
    return { blob, state: status?.state ?? record.state, done: status?.shards.done ?? record.done, total: record.shards }
  }

  /** summary.md (or summary.html), when this node coordinated the campaign and it has ended. */
  async summaryFor (id: string, format: SummaryFormat = 'md'): Promise<{ text: string } | null> {
    const own = await this.#init.store.campaign(id)
    if (own == null || own.movedTo != null || !isFinal(own.state)) return null
    const text = await readFile(join(own.runDir, `summary.${format}`), 'utf8').catch(() => null)
    return text != null ? { text } : null
  }

  /** For a peer: the audit log as a blob, when this node coordinates the campaign. */
  async auditFor (peer: string, id: string): Promise<{ blob: BlobRef, head?: string } | null> {
    const own = await this.#init.store.campaign(id)
    if (own == null || own.movedTo != null) return null
    const blob = await this.#offer(peer, await this.#init.blobs.store.putFile(join(own.runDir, 'audit.jsonl'), `${id}-audit.jsonl`))
    return { blob, ...(isFinal(own.state) && own.auditHead != null ? { head: own.auditHead } : {}) }
  }

  /** Lets `peer` fetch a blob made for it; it goes once the peer has had time for the fetch. */
  async #offer (peer: string, ref: BlobRef): Promise<BlobRef> {
    const scope = `offer:${ref.hash}:${++this.#offers}`
    this.#init.access.grant(scope, peer, [ref.hash])
    this.#offered.set(ref.hash, (this.#offered.get(ref.hash) ?? 0) + 1)
    setTimeout(() => {
      this.#init.access.revoke(scope)
      const left = (this.#offered.get(ref.hash) ?? 1) - 1
      if (left > 0) {
        this.#offered.set(ref.hash, left)
        return
      }
      this.#offered.delete(ref.hash)
      this.#init.blobs.store.remove(ref.hash).catch((err: unknown) => { this.#init.log.warn({ blob: ref.hash, err: describeError(err) }, 'cannot remove a blob made for a peer') })
    }, EXPORT_TIMEOUT_MS * 2).unref()
    return ref
  }
}

function notEnded (id: string, state: CampaignState, done: number, total: number): NotEndedError {
  const what = state === 'RUNNING' || state === 'QUEUED' || state === 'STOPPED' ? 'has not ended' : 'did not succeed'
  return new NotEndedError(`campaign ${id} ${what} (${state}): ${done} of ${total} shards have results, so the rows are partial; pass --partial (REST: ?partial=true) to get them anyway`)
}

function checked (id: string, answer: ResultsAnswer, partial: boolean): ResultsAnswer {
  if (answer.state !== 'SUCCEEDED' && !partial) throw notEnded(id, answer.state, answer.done, answer.total)
  return answer
}

/** A fetched file's text; the file goes once it has been read (or the reader stopped). */
async function * readThenRemove (path: string, remove: () => Promise<void>): AsyncGenerator<string> {
  try {
    for await (const chunk of createReadStream(path, { encoding: 'utf8' })) yield chunk as string
  } finally {
    await remove().catch(() => {})
  }
}

/** Text chunks as UTF-8 bytes, gathered into writes of about 64 KiB. */
async function * utf8Chunks (text: AsyncIterable<string>): AsyncGenerator<Uint8Array> {
  let pending = ''
  for await (const chunk of text) {
    pending += chunk
    if (pending.length >= 64 * 1024) {
      yield Buffer.from(pending, 'utf8')
      pending = ''
    }
  }
  if (pending !== '') yield Buffer.from(pending, 'utf8')
}
