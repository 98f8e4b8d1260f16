import type { Logger } from 'pino'
import type { CoordinatorRequest, ResultAck, WorkerRequest } from '../../protocols/campaign/messages.ts'
import type { ShardOutput } from '../../protocols/campaign/shard.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import { describeError, UnavailableError } from '../runtime/errors.ts'
import { Later } from '../runtime/types.ts'
import type { CampaignSession } from './session.ts'
import type { ShardState } from './states.ts'

type ResultMsg = Extract<CoordinatorRequest, { type: 'result' }>

export type ResultVerdict =
  /** the shard is done already: the same rows are a harmless duplicate, other rows a non-deterministic workload */
  | 'duplicate'
  /** the sender never held a lease of the shard: ignored */
  | 'not-held'
  /** a result to store */
  | 'store'
  /** a failure of the attempt it reports */
  | 'failure'

/** What to do with a worker's result, from where its shard stands and whether the sender held it. */
export function judgeResult (shard: ShardState, held: boolean, ok: boolean): ResultVerdict {
  if (shard === 'done') return 'duplicate'
  if (!held) return 'not-held'
  return ok ? 'store' : 'failure'
}

/** The executor a result was produced on, for the per-accelerator report. */
export function acceleratorOf (kind: string, info: Record<string, unknown> | undefined): string {
  if (typeof info?.executionProvider === 'string') return `onnx:${info.executionProvider}`
  return kind === 'onnx' ? 'onnx' : 'cpu'
}

export interface ResultIO {
  log: Logger
  /** fetches a worker's large result */
  fetchOutput: (worker: string, ref: BlobRef) => Promise<ShardOutput>
  /** hands a result, its rows now fetched, back to the coordinator's mailbox; resolves with its answer */
  fetched: (msg: ResultMsg, from: string) => Promise<ResultAck>
  tellWorker: (worker: string, msg: WorkerRequest) => void
  /** something changed: finish the campaign if it is settled, and schedule */
  changed: (session: CampaignSession) => void
}

/**
 * A worker's result: stored durably (here, then on enough replicas) before
 * the shard counts as done and the worker is acknowledged.
 */
export async function onResult (session: CampaignSession, msg: ResultMsg, from: string, now: number, io: ResultIO): Promise<ResultAck | Later<ResultAck>> {
  const run = session.run
  const verdict = judgeResult(run.stateOf(msg.index), session.held(msg.index, from), msg.outcome.ok)
  if (verdict === 'duplicate') return await duplicate(session, msg, from, io)
  if (verdict === 'not-held') {
    io.log.warn({ campaign: session.id, shard: msg.index, from }, 'result from a peer that holds no lease for the shard: ignored')
    return { ok: false, stale: true }
  }
  // rows too large for a message are fetched outside the mailbox: a slow or cut-off worker holds up nothing else
  if (msg.outcome.ok && msg.outcome.output == null && msg.outcome.blob != null) {
    const blob = msg.outcome.blob
    return new Later(fetchOrUnavailable(io, from, blob).then(async output => await io.fetched({ ...msg, outcome: { ok: true, output } }, from)))
  }
  if (!msg.outcome.ok) return await onFailure(session, msg, msg.outcome, from, now, io)
  const output = msg.outcome.output ?? { rows: [] }
  let seq: number
  try {
    seq = await session.commit([{ op: 'result', index: msg.index, result: { rows: output.rows, info: output.info, worker: from, attempt: msg.attempt, durationMs: msg.durationMs } }])
  } catch (err) {
    io.log.error({ campaign: session.id, shard: msg.index, err: describeError(err) }, 'cannot store a shard result (is the disk full?); the shard stays owed and its worker retries')
    throw new UnavailableError(`the coordinator cannot store the result of shard ${msg.index}: ${describeError(err)}`)
  }
  const { duplicate: late, supersedes } = run.complete(msg.index, from, now, { durationMs: msg.durationMs })
  if (!late) session.audit.result(from, msg.index, output.rows)
  session.holders.delete(msg.index)
  session.checkpoints.delete(msg.index)
  if (supersedes != null) io.tellWorker(supersedes.worker, { type: 'cancel', campaignId: session.id, shards: [msg.index] })
  io.changed(session)
  // done once it is durable: on this disk now, and on enough replicas when the answer goes out
  return session.whenDurable(seq, { ok: true, duplicate: late })
}

async function onFailure (session: CampaignSession, msg: ResultMsg, outcome: { error: string, retryable: boolean }, from: string, now: number, io: ResultIO): Promise<ResultAck | Later<ResultAck>> {
  const run = session.run
  const verdict = run.fail(msg.index, msg.epoch, from, outcome.error, outcome.retryable, now)
  if (verdict === 'stale') return { ok: true, stale: true }
  const line = { campaign: session.id, shard: msg.index, attempt: msg.attempt, worker: from, err: outcome.error.split('\n')[0] }
  if (verdict === 'dead') io.log.error(line, `shard ${msg.index} failed for good; dead-lettered`)
  else io.log.warn(line, `shard ${msg.index} failed; will retry`)
  session.audit.append({ type: verdict === 'dead' ? 'dead-lettered' : 'failed', shard: msg.index, worker: from, epoch: msg.epoch, attempt: msg.attempt, error: line.err })
  let seq = 0
  try {
    seq = await session.commit([
      { op: 'shard', index: msg.index, state: shardRecord(session, msg.index, verdict === 'dead' ? outcome.error : undefined) },
      { op: 'leases', put: [], del: [msg.index] }
    ])
  } catch (err) {
    io.log.error({ campaign: session.id, shard: msg.index, err: describeError(err) }, 'cannot record a shard failure (is the disk full?)')
  }
  io.changed(session)
  return session.whenDurable(seq, { ok: true })
}

/** A shard's record as it stands: failures (and where), its dead letter, its checkpoint. */
export function shardRecord (session: CampaignSession, index: number, deadError?: string): { failures: number, failedOn?: string[], dead?: { attempts: number, error: string }, checkpoint?: unknown } {
  const run = session.run
  const failedOn = run.failedOn(index)
  return {
    failures: run.failures(index),
    ...(failedOn.length > 0 ? { failedOn: failedOn.slice(-64) } : {}),
    ...(deadError != null ? { dead: { attempts: run.failures(index), error: deadError } } : {}),
    ...(session.checkpoints.has(index) ? { checkpoint: session.checkpoints.get(index) } : {})
  }
}

/**
 * The same shard again (a worker presumed lost delivered after all): counted
 * once. The same rows are a harmless duplicate; different rows mean the
 * workload is not deterministic, and the later result is refused.
 */
async function duplicate (session: CampaignSession, msg: ResultMsg, from: string, io: ResultIO): Promise<ResultAck> {
  if (!msg.outcome.ok) return { ok: true, duplicate: true }
  const stored = await session.storedResult(msg.index)
  const output = msg.outcome.output ?? { rows: [] }
  const same = stored != null && JSON.stringify(stored.rows) === JSON.stringify(output.rows)
  session.audit.append({ type: 'duplicate', shard: msg.index, worker: from, epoch: msg.epoch, same })
  if (same) return { ok: true, duplicate: true }
  io.log.warn({ campaign: session.id, shard: msg.index, worker: from }, `shard ${msg.index} came back with different rows than the result already stored: the workload is not deterministic; the later result is refused`)
  return { ok: false, stale: true }
}

async function fetchOrUnavailable (io: ResultIO, worker: string, ref: BlobRef): Promise<ShardOutput> {
  try {
    return await io.fetchOutput(worker, ref)
  } catch (err) {
    throw new UnavailableError(`cannot fetch the result blob of ${ref.name} from its worker: ${describeError(err)}`)
  }
}

/** A module shard's ctx.checkpoint(state): kept durably, so a retry resumes from it. */
export async function onCheckpoint (session: CampaignSession, msg: Extract<CoordinatorRequest, { type: 'checkpoint' }>, from: string): Promise<{ ok: boolean } | Later<{ ok: boolean }>> {
  const lease = session.run.lease(msg.index)
  if (lease == null || lease.worker !== from || lease.epoch !== msg.epoch) return { ok: false }
  session.checkpoints.set(msg.index, msg.state)
  try {
    const seq = await session.commit([{ op: 'shard', index: msg.index, state: shardRecord(session, msg.index) }])
    return session.whenDurable(seq, { ok: true })
  } catch (err) {
    throw new UnavailableError(`cannot store the checkpoint of shard ${msg.index}: ${describeError(err)}`)
  }
}

/** The worker hands a shard back unfinished (it is draining): not an attempt. */
export function onRelease (session: CampaignSession, msg: Extract<CoordinatorRequest, { type: 'release' }>, from: string, io: ResultIO): { ok: boolean } {
  const lease = session.run.lease(msg.index)
  if (lease == null || lease.worker !== from || lease.epoch !== msg.epoch) return { ok: false }
  session.run.requeue(msg.index, msg.epoch)
  session.leasesEnded([lease], `handed back: ${msg.reason}`)
  io.log.info({ campaign: session.id, shard: msg.index, worker: lease.workerName, reason: msg.reason }, 'shard handed back; re-queued (not an attempt)')
  io.changed(session)
  return { ok: true }
}
