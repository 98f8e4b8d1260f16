import type { Logger } from 'pino'
import { DETACHED_ACTOR, DETACHED_WORKER, LeaseReplySchema, WORKER_ACTOR, type LeaseReply, type WorkerRequest } from '../../protocols/campaign/messages.ts'
import { describeError } from '../runtime/errors.ts'
import type { ActorContext } from '../runtime/types.ts'
import type { LeaseInfo } from './campaign.ts'
import { shardBlobs, type CampaignSession, type CoordinatorMetrics } from './session.ts'

const LEASE_ASK_TIMEOUT_MS = 15_000
/** how long a worker that refused (busy) or failed a lease is left alone */
export const BUSY_BACKOFF_MS = 250
/** …and one that does not trust this node */
export const REFUSING_BACKOFF_MS = 30_000

/** How a lease message ended, as the coordinator's mailbox hears of it. */
export interface LeaseOutcome {
  type: 'lease-reply'
  campaignId: string
  worker: string
  sent: Array<{ index: number, epoch: number }>
  reply?: LeaseReply
  error?: { name: string, message: string }
  /** never sent: the replicas stopped confirming this coordinator while the leases were being stored */
  fenced?: boolean
}

export interface LeasingIO {
  self: string
  ctx: ActorContext
  log: Logger
  grant: (scope: string, peer: string, hashes: string[]) => void
  metrics?: CoordinatorMetrics
}

/** Where a worker's messages go: its node's worker actor, or, for a detached campaign, this node's detached actor. */
export function workerRef (worker: string, self: string): { peer: string, name: string } {
  return worker === DETACHED_WORKER ? { peer: self, name: DETACHED_ACTOR } : { peer: worker, name: WORKER_ACTOR }
}

/**
 * Sends leases to a worker, outside the mailbox: they are stored (and
 * streamed to the replicas) before they leave, so a restarted coordinator
 * still knows who holds what and never reuses an epoch; the outcome comes
 * back to the mailbox as a `lease-reply`.
 */
export function sendLeases (session: CampaignSession, worker: string, workerName: string, leases: LeaseInfo[], io: LeasingIO): void {
  const sent = leases.map(l => ({ index: l.index, epoch: l.epoch }))
  const outcome = { type: 'lease-reply' as const, campaignId: session.id, worker, sent }
  const work = async (): Promise<LeaseOutcome> => {
    const shards = leases.map(l => session.shard(l.index))
    await session.commit([
      ...session.leaseRecordOps(worker, workerName),
      { op: 'leases', put: leases.map(l => ({ index: l.index, worker, epoch: l.epoch })), del: [] }
    ])
    // fencing, checked as the leases leave (the write above may have taken a while)
    if (session.group != null && !session.group.leads(io.ctx.now())) return { ...outcome, fenced: true }
    session.audit.leased(worker, leases)
    io.metrics?.leases(session.id, 'granted', leases.length)
    io.grant(session.id, worker, shardBlobs(session.spec, shards))
    const reply = await io.ctx.ask(workerRef(worker, io.self), {
      type: 'lease',
      campaignId: session.id,
      campaignName: session.spec.name,
      workload: session.spec.workload,
      params: session.spec.params,
      term: session.term,
      successors: session.replicas,
      leases: leases.map((l, i) => ({
        shard: shards[i]!, attempt: l.attempt, epoch: l.epoch, timeoutMs: session.spec.shardTimeoutMs, resumeFrom: session.checkpoints.get(l.index)
      }))
    } satisfies WorkerRequest, { timeoutMs: LEASE_ASK_TIMEOUT_MS, replySchema: LeaseReplySchema, signal: io.ctx.signal })
    return { ...outcome, reply }
  }
  work()
    .catch((err: unknown): LeaseOutcome => ({ ...outcome, error: { name: (err as Error).name, message: describeError(err) } }))
    .then(async msg => { await io.ctx.tell(io.ctx.self, msg) })
    .catch(() => {})
}

/**
 * What came of a lease message: leases that never left, were not delivered
 * or were refused go back to the front of the queue (not counted as
 * attempts). Returns how long to leave the worker alone, if at all.
 */
export function onLeaseOutcome (session: CampaignSession, msg: LeaseOutcome, io: LeasingIO): number | undefined {
  const run = session.run
  if (msg.fenced === true) {
    for (const s of msg.sent) run.requeue(s.index, s.epoch)
    session.deleteLeases(msg.sent.map(s => s.index))
    return undefined
  }
  if (msg.error != null) {
    const back = msg.sent.filter(s => run.requeue(s.index, s.epoch)).map(s => s.index)
    session.requeued(back, `lease not delivered: ${msg.error.message}`)
    const refusing = msg.error.name === 'NotAuthorizedError'
    if (refusing) session.refusedBy.add(msg.worker)
    io.log.warn({ campaign: session.id, worker: msg.worker, err: msg.error.message },
      refusing ? `worker does not trust this node; start it with --trust ${io.self} (or join through this node)` : 'could not lease shards to worker')
    return refusing ? REFUSING_BACKOFF_MS : BUSY_BACKOFF_MS
  }
  if (msg.reply == null) return undefined
  // it took a lease, so it trusts this node now (restarted with --trust, say): the coordinator clears its refusals
  const byEpoch = new Map(msg.sent.map(s => [s.epoch, s.index]))
  const back: number[] = []
  for (const r of msg.reply.refused) {
    const index = byEpoch.get(r.epoch)
    if (index != null && run.requeue(index, r.epoch)) back.push(index)
  }
  session.requeued(back, `refused by the worker: ${msg.reply.refused[0]?.reason ?? ''}`)
  return msg.reply.refused.length > 0 ? BUSY_BACKOFF_MS : undefined
}

/** Tells every live worker that results of this campaign come here now (and lets them fetch its files). */
export function announce (session: CampaignSession, peers: ReadonlyArray<{ peerId: string, state: string }>, io: LeasingIO): void {
  const files = session.files().map(f => f.hash)
  for (const p of peers) {
    if (p.state === 'dead') continue
    io.grant(session.id, p.peerId, files)
    void io.ctx.ask({ peer: p.peerId, name: WORKER_ACTOR }, { type: 'moved', campaignId: session.id, term: session.term } satisfies WorkerRequest, { timeoutMs: 10_000, signal: io.ctx.signal })
      .catch((err: unknown) => { io.log.debug({ worker: p.peerId, err: describeError(err) }, 'could not tell a worker the campaign moved') })
  }
}
