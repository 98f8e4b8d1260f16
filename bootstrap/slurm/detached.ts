import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { describeError } from '../../actors/runtime/errors.ts'
import type { ActorContext, ActorDefinition, Behavior, MessageMeta } from '../../actors/runtime/types.ts'
import { COORDINATOR_ACTOR, type CoordinatorRequest, type LeaseReply, type ResultAck, type WorkerRequest } from '../../protocols/campaign/messages.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { SlurmClient, SqueueRow } from './commands.ts'
import { arrayChunks, goneVerdict } from './detached-plan.ts'
import { finishedShards, readShardError, readShardOutput, removeDetachedDir, writeManifest, writeShards } from './manifest.ts'
import { detachedScript, toSlurmTime } from './script.ts'
import { taskOutcome } from './states.ts'

export { DETACHED_ACTOR } from '../../protocols/campaign/messages.ts'

const POLL_MS = 1000
/** leases that arrive together go into one sbatch array */
const BATCH_MS = 200
/** a task Slurm still holds tells the coordinator so this often, so the queue's wait does not expire its lease */
const KEEPALIVE_MS = 10_000
/** after sbatch failed, leases are refused (and the coordinator told why) this long */
const SUBMIT_BACKOFF_MS = 10_000
const STDERR_TAIL_BYTES = 2048

export interface DetachedPorts {
  self: string
  /** the campaign as the coordinator stored it */
  spec: (campaignId: string) => Promise<CampaignSpec | undefined>
  blobPath: (hash: string) => string
  slurm: () => SlurmClient
  /** absolute Node ≥ 22 and zp-node.mjs, as the compute nodes find them */
  nodeArgv: string[]
  /** this node's exec config, for exec campaigns (run-shard --exec-config) */
  execConfig?: string
}

interface Tracked {
  index: number
  epoch: number
  attempt: number
  /** `<job>_<task>` once submitted */
  task?: string
  /** when it was last seen in squeue, and first missed */
  seenAt?: number
  goneSince?: number
  keptAliveAt?: number
}

interface Detached {
  id: string
  spec: CampaignSpec
  dir: string
  tracked: Map<number, Tracked>
  /** leased, waiting for the next sbatch */
  unsubmitted: Set<number>
  /** array job ids submitted for it */
  jobs: Set<string>
}

type DetachedMessage = WorkerRequest | { type: 'poll' } | { type: 'flush' } | { type: 'ended', campaignId: string }

/**
 * Runs detached campaigns' shards as Slurm array tasks (`zp submit --on
 * slurm`): the coordinator leases them to this actor as to a worker; it writes
 * the manifest to the shared dir, submits `sbatch --array`, follows the tasks
 * with squeue and sacct, and hands each committed `shard-<i>.jsonl` back as
 * the shard's result — so store, replication, audit and summary are those of
 * any campaign. A task that failed is reported with its cause (the coordinator
 * retries it up to retry.maxAttempts: a new lease, a new array); one that
 * Slurm cancelled or lost is handed back, not counted against the shard.
 */
export function detachedActor (ports: DetachedPorts): ActorDefinition<DetachedMessage> {
  return {
    access: 'local',
    create: (ctx) => new DetachedRunner(ports, ctx)
  }
}

class DetachedRunner implements Behavior<DetachedMessage> {
  readonly #ports: DetachedPorts
  readonly #ctx: ActorContext
  readonly #log: Logger
  readonly #campaigns = new Map<string, Detached>()
  #flushTimer: (() => void) | undefined
  #polling = false
  #submitFailure: { until: number, reason: string } | undefined

  constructor (ports: DetachedPorts, ctx: ActorContext) {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    ctx.timers.every(POLL_MS, { type: 'poll' })
  }

  async receive (msg: DetachedMessage, meta: MessageMeta): Promise<unknown> {
    if (meta.from !== this.#ports.self) return undefined
    switch (msg.type) {
      case 'lease': return await this.#onLease(msg)
      case 'cancel': await this.#onCancel(msg.campaignId, msg.shards); return { ok: true }
      case 'moved': return { ok: true }
      case 'flush': this.#flushTimer = undefined; await this.#flush(); return
      case 'poll': this.#poll(); return
      case 'ended': await this.#onEnded(msg.campaignId); return
    }
  }

  async #onLease (msg: Extract<WorkerRequest, { type: 'lease' }>): Promise<LeaseReply> {
    const now = this.#ctx.now()
    if (this.#submitFailure != null && this.#submitFailure.until > now) {
      return { accepted: [], refused: msg.leases.map(l => ({ epoch: l.epoch, code: 'busy' as const, reason: this.#submitFailure!.reason.slice(0, 500) })), free: 0 }
    }
    const c = await this.#campaign(msg.campaignId)
    await writeShards(c.dir, msg.leases.map(l => ({ shard: l.shard, attempt: l.attempt, ...(l.resumeFrom !== undefined ? { resumeFrom: l.resumeFrom } : {}) })))
    for (const l of msg.leases) {
      const had = c.tracked.get(l.shard.index)
      // the same attempt leased again (its lease expired while Slurm held the task): the task answers for the new epoch
      if (had?.task != null && had.attempt === l.attempt) {
        had.epoch = l.epoch
        continue
      }
      c.tracked.set(l.shard.index, { index: l.shard.index, epoch: l.epoch, attempt: l.attempt })
      c.unsubmitted.add(l.shard.index)
    }
    this.#flushTimer ??= this.#ctx.timers.after(BATCH_MS, { type: 'flush' })
    return { accepted: msg.leases.map(l => l.epoch), refused: [], free: 1_000_000 }
  }

  async #campaign (id: string): Promise<Detached> {
    const have = this.#campaigns.get(id)
    if (have != null) return have
    const spec = await this.#ports.spec(id)
    if (spec?.detached == null) throw new Error(`campaign ${id} is not a detached campaign of this node`)
    const dir = join(spec.detached.sharedDir, id)
    await writeManifest(dir, { campaignId: id, spec, blobPath: this.#ports.blobPath })
    await mkdir(join(dir, 'logs'), { recursive: true })
    const c: Detached = { id, spec, dir, tracked: new Map(), unsubmitted: new Set(), jobs: new Set() }
    this.#campaigns.set(id, c)
    this.#log.info({ campaign: id, dir }, 'detached campaign: manifest written to the shared dir')
    return c
  }

  /** Submits what was leased since the last flush, as sbatch arrays (after taking any shard whose file is already there). */
  async #flush (): Promise<void> {
    for (const c of this.#campaigns.values()) {
      if (c.unsubmitted.size === 0) continue
      const indexes = [...c.unsubmitted].filter(i => c.tracked.has(i))
      c.unsubmitted.clear()
      const done = new Set(await finishedShards(c.dir).catch(() => []))
      const todo = indexes.filter(i => !done.has(i))
      try {
        await this.#submit(c, todo)
      } catch (err) {
        const reason = `sbatch failed: ${describeError(err)}`
        this.#submitFailure = { until: this.#ctx.now() + SUBMIT_BACKOFF_MS, reason }
        this.#log.error({ campaign: c.id, shards: todo.length, err: describeError(err) }, 'cannot submit the detached campaign\'s array; its shards go back to the queue')
        for (const i of todo) await this.#report(c, i, { type: 'release', reason })
      }
    }
  }

  async #submit (c: Detached, indexes: number[]): Promise<void> {
    const d = c.spec.detached!
    for (const ch of arrayChunks(indexes)) {
      const { script, args } = detachedScript({
        nodeArgv: this.#ports.nodeArgv,
        manifestDir: c.dir,
        base: ch.base,
        arrayRanges: ch.ranges,
        ...(d.arrayLimit != null ? { arrayLimit: d.arrayLimit } : {}),
        jobName: `zp-${c.spec.name}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 64),
        logDir: join(c.dir, 'logs'),
        ...(d.partition != null ? { partition: d.partition } : {}),
        time: d.time ?? toSlurmTime(c.spec.shardTimeoutMs),
        ...(d.sbatchArgs != null ? { sbatchArgs: d.sbatchArgs } : {}),
        ...(this.#ports.execConfig != null ? { execConfig: this.#ports.execConfig } : {})
      })
      const file = join(c.dir, `array-${this.#ctx.now()}-${ch.base}.sh`)
      await writeFile(file, script, { mode: 0o700 })
      const job = await this.#ports.slurm().sbatch(file, args, this.#ctx.signal)
      c.jobs.add(job)
      for (const i of ch.indexes) {
        const t = c.tracked.get(i)
        if (t != null) t.task = `${job}_${i - ch.base}`
      }
      await appendFile(join(c.dir, 'jobs.jsonl'), JSON.stringify({ job, base: ch.base, ranges: ch.ranges, at: this.#ctx.now() }) + '\n')
      this.#log.info({ campaign: c.id, job, shards: ch.indexes.length, base: ch.base }, `submitted ${ch.indexes.length} shard(s) as Slurm array ${job}`)
    }
  }

  #poll (): void {
    if (this.#polling || this.#campaigns.size === 0) return
    this.#polling = true
    void this.#pollAll().catch((err: unknown) => {
      this.#log.warn({ err: describeError(err) }, 'cannot follow the detached campaigns\' Slurm arrays now; trying again')
    }).finally(() => { this.#polling = false })
  }

  /** Results first (a committed file wins whatever Slurm says), then the tasks that left the queue without one. */
  async #pollAll (): Promise<void> {
    for (const c of [...this.#campaigns.values()]) {
      if (c.tracked.size === 0) continue
      for (const i of await finishedShards(c.dir)) {
        const t = c.tracked.get(i)
        if (t == null) continue
        const got = await readShardOutput(c.dir, i)
        if (got == null) continue
        await this.#report(c, i, { type: 'result', attempt: t.attempt, durationMs: got.meta?.durationMs ?? 0, outcome: { ok: true, output: got.output } })
      }
      const submitted = [...c.tracked.values()].filter(t => t.task != null)
      if (submitted.length === 0 || c.jobs.size === 0) continue
      const now = this.#ctx.now()
      const rows = new Map<string, SqueueRow>((await this.#ports.slurm().squeue([...c.jobs], this.#ctx.signal)).map(r => [r.jobId, r]))
      const gone: Tracked[] = []
      for (const t of submitted) {
        if (rows.has(t.task!)) {
          t.seenAt = now
          t.goneSince = undefined
          if (now - (t.keptAliveAt ?? 0) >= KEEPALIVE_MS) {
            t.keptAliveAt = now
            await this.#report(c, t.index, { type: 'progress', fraction: 0 }).catch(() => {})
          }
        } else {
          t.goneSince ??= now
          gone.push(t)
        }
      }
      if (gone.length > 0) await this.#settleGone(c, gone, now)
    }
  }

  async #settleGone (c: Detached, gone: Tracked[], now: number): Promise<void> {
    const acct = new Map((await this.#ports.slurm().sacct([...new Set(gone.map(t => t.task!.split('_')[0]!))], this.#ctx.signal)).map(r => [r.jobId, r]))
    const finished = new Set(await finishedShards(c.dir))
    for (const t of gone) {
      if (finished.has(t.index)) continue // the next poll takes its result
      const row = acct.get(t.task!)
      const outcome = row != null ? taskOutcome(row) : { final: false, ok: false, cause: 'no accounting record yet' }
      const failed = outcome.final && !outcome.ok
      const verdict = goneVerdict({
        state: row?.state,
        final: outcome.final,
        ok: outcome.ok,
        cause: `${t.task}: ${outcome.cause}`,
        // what the task left behind is read only for a failure, which reports it
        error: failed ? await readShardError(c.dir, t.index, t.attempt).catch(() => undefined) : undefined,
        stderr: failed ? await this.#stderrTail(c, t.task!) : '',
        goneForMs: now - t.goneSince!
      })
      if (verdict.kind === 'wait') continue
      if (verdict.kind === 'lost') {
        this.#log.warn({ campaign: c.id, shard: t.index, task: t.task, reason: verdict.reason }, 'Slurm task ended without a result; the shard runs again (not counted as an attempt)')
        await this.#report(c, t.index, { type: 'release', reason: verdict.reason.slice(0, 500) })
      } else {
        this.#log.warn({ campaign: c.id, shard: t.index, task: t.task, attempt: t.attempt, err: verdict.error }, 'Slurm task failed')
        await this.#report(c, t.index, { type: 'result', attempt: t.attempt, durationMs: 0, outcome: { ok: false, error: verdict.error.slice(0, 8000), retryable: verdict.retryable } })
      }
    }
  }

  async #stderrTail (c: Detached, task: string): Promise<string> {
    const text = await readFile(join(c.dir, 'logs', `${task}.err`), 'utf8').catch(() => '')
    return text.slice(-STDERR_TAIL_BYTES)
  }

  /** Tells the coordinator; the shard leaves this actor once the coordinator has it (or no longer wants it from here). */
  async #report (c: Detached, index: number, report: { type: 'result', attempt: number, durationMs: number, outcome: Extract<CoordinatorRequest, { type: 'result' }>['outcome'] } | { type: 'release', reason: string } | { type: 'progress', fraction: number }): Promise<void> {
    const t = c.tracked.get(index)
    if (t == null) return
    const ref = { campaignId: c.id, index, epoch: t.epoch }
    const ack = await this.#ctx.ask<ResultAck | { ok: boolean }>({ peer: this.#ports.self, name: COORDINATOR_ACTOR }, { type: 'detached', report: { ...ref, ...report } }, { timeoutMs: 60_000, signal: this.#ctx.signal })
    if (report.type === 'progress') return
    if (report.type === 'release' || ack.ok || (ack as ResultAck).stale === true || (ack as ResultAck).duplicate === true) c.tracked.delete(index)
  }

  async #onCancel (campaignId: string, shards: number[] | undefined): Promise<void> {
    const c = this.#campaigns.get(campaignId)
    if (c == null) return
    const which = shards == null ? [...c.tracked.values()] : shards.map(i => c.tracked.get(i)).filter(t => t != null)
    const tasks = which.flatMap(t => t.task != null ? [t.task] : [])
    for (const t of which) {
      c.tracked.delete(t.index)
      c.unsubmitted.delete(t.index)
    }
    const ids = shards == null ? [...c.jobs] : tasks
    if (ids.length === 0) return
    await this.#ports.slurm().scancel(ids, this.#ctx.signal).catch((err: unknown) => {
      this.#log.error({ campaign: campaignId, tasks: ids, err: describeError(err) }, `cannot scancel the campaign's Slurm tasks; run: scancel ${ids.join(' ')}`)
    })
    this.#log.info({ campaign: campaignId, tasks: ids }, 'scancelled the campaign\'s Slurm tasks')
  }

  /** The campaign ended: nothing of it stays queued on Slurm, and its shared dir goes. */
  async #onEnded (campaignId: string): Promise<void> {
    const c = this.#campaigns.get(campaignId)
    if (c == null) return
    this.#campaigns.delete(campaignId)
    const live = c.jobs.size === 0 ? [] : await this.#ports.slurm().squeue([...c.jobs], this.#ctx.signal).catch(() => [...c.jobs].map(j => ({ arrayJobId: j })))
    const jobs = [...new Set(live.map(r => r.arrayJobId))]
    if (jobs.length > 0) {
      await this.#ports.slurm().scancel(jobs, this.#ctx.signal).catch((err: unknown) => {
        this.#log.error({ campaign: campaignId, jobs, err: describeError(err) }, `cannot scancel the ended campaign's Slurm arrays; run: scancel ${jobs.join(' ')}`)
      })
    }
    await removeDetachedDir(c.dir).catch((err: unknown) => {
      this.#log.warn({ campaign: campaignId, dir: c.dir, err: describeError(err) }, 'cannot remove the detached campaign\'s shared dir')
    })
  }
}
