import type { Logger } from 'pino'
import { backoffDelay } from '../../protocols/common/backoff.ts'
import { deadline, delay } from '../../protocols/common/signals.ts'
import {
  COORDINATOR_ACTOR, ResultAckSchema, WORKER_QUEUE_FACTOR, WorkerRequestSchema,
  type CoordinatorRequest, type LeaseReply, type WorkerRequest
} from '../../protocols/campaign/messages.ts'
import type { BlobRef, Workload } from '../../protocols/campaign/spec.ts'
import { describeError, NotAuthorizedError } from '../runtime/errors.ts'
import type { ActorContext, ActorDefinition, Behavior, MessageMeta } from '../runtime/types.ts'
import { refuseLease } from './leases.ts'
import { nextLifecycle, type WorkerEvent, type WorkerState, type WorkerStatus } from './lifecycle.ts'
import { ShardFailure, type Runner } from './runners/types.ts'
import { shardFiles, shardTask, type ShardBlobs, type Task } from './task.ts'

export { WORKER_ACTOR } from '../../protocols/campaign/messages.ts'
export type { WorkerStatus } from './lifecycle.ts'

/** What the worker needs from its node. */
export interface WorkerPorts {
  slots: number
  runners: Record<Workload['kind'], Runner>
  blobs: ShardBlobs & {
    /** keep `bytes` for `peer` to fetch (a result too large for a message) */
    offer: (peer: string, bytes: Uint8Array, name: string) => Promise<BlobRef>
  }
  /** tell the node how many slots are busy (advertised as free slots) */
  setBusy: (busy: number) => void
  /** may this peer coordinate work here (the node's trust policy) */
  isTrusted: (peer: string) => boolean
  /** hears of every shard that ends here (the node's Prometheus metrics) */
  metrics?: WorkerMetrics
}

export interface WorkerMetrics {
  shardEnded: (e: {
    campaign: string
    kind: Workload['kind']
    outcome: 'ok' | 'failed' | 'cancelled' | 'released'
    seconds: number
    /** how many result rows it produced, when it succeeded (counted, not encoded again: that would cost a second serialisation) */
    resultRows?: number
    timedOut?: boolean
  }) => void
}

/** Who coordinates a campaign, as far as this worker knows: fencing by term, and who may take over. */
interface Coordination {
  coordinator: string
  term: number
  successors: string[]
}

type LocalMessage =
  | { type: 'task-done', key: string }
  | { type: 'delivered' }
  | { type: 'drain' }
  | { type: 'status' }

export type WorkerMessage = WorkerRequest | LocalMessage

const PROGRESS_EVERY_MS = 250
const STARTED_AFTER_MS = 250
const DELIVERY: { backoff: { initialMs: number, factor: number, maxMs: number, jitter: number }, giveUpMs: number } = {
  backoff: { initialMs: 500, factor: 2, maxMs: 15_000, jitter: 0.2 },
  giveUpMs: 10 * 60_000
}

/**
 * The worker actor of a node: takes leases from trusted coordinators (the
 * host refuses everyone else before this sees anything), runs up to `slots`
 * shards at once with as many queued behind them, and delivers each outcome
 * until the coordinator acknowledges it. Draining stops new leases, hands
 * queued shards back at once and running ones when the drain deadline comes.
 */
export function workerActor (ports: WorkerPorts): ActorDefinition<WorkerMessage> {
  return {
    // trusted coordinators, and the replicas they named once one of them takes a campaign over: checked per campaign
    access: 'public',
    schema: WorkerRequestSchema as never,
    mailboxSize: 4096,
    create: (ctx) => new Worker(ports, ctx)
  }
}

class Worker implements Behavior<WorkerMessage> {
  readonly #ports: WorkerPorts
  readonly #ctx: ActorContext
  readonly #log: Logger
  readonly #queued: Task[] = []
  readonly #running = new Map<string, Task>()
  /** tasks whose result is on its way */
  readonly #delivery = new Set<Task>()
  #state: WorkerState = 'running'
  /** results being delivered: a slot is free before its result is acknowledged, a drain is not over */
  #delivering = 0
  /** leases accepted in all: how an idle watcher tells that work came and went between two looks */
  #taken = 0
  #idle = Promise.withResolvers<void>()
  readonly #coordination = new Map<string, Coordination>()
  /** resolved when a campaign moves: deliveries waiting to retry go to the new coordinator at once */
  #moved = Promise.withResolvers<void>()

  constructor (ports: WorkerPorts, ctx: ActorContext) {
    this.#ports = ports
    this.#ctx = ctx
    this.#log = ctx.log
    this.#idle.resolve()
  }

  /** The one place the lifecycle state changes. */
  #become (event: WorkerEvent): void {
    const to = nextLifecycle(this.#state, event)
    if (to == null) return
    this.#log.info({ from: this.#state, to, event }, `worker ${to}`)
    this.#state = to
  }

  stopped (): void {
    this.#become('stop')
    for (const t of [...this.#queued, ...this.#running.values()]) t.abort.abort(new Error('node stopping'))
  }

  receive (msg: WorkerMessage, meta: MessageMeta): unknown {
    switch (msg.type) {
      case 'lease': return this.#onLease(msg, meta.from)
      case 'cancel': return this.#onCancel(msg, meta.from)
      case 'moved': return this.#onMoved(msg.campaignId, meta.from, msg.term)
    }
    if (meta.from !== this.#ctx.self.peer) return undefined
    switch (msg.type) {
      case 'task-done': this.#onTaskDone(msg.key); return
      case 'delivered': this.#delivering--; this.#checkIdle(); return
      // not a promise: the caller awaits `idle` without holding this mailbox
      case 'drain': return this.#onDrain()
      case 'status': return {
        running: this.#running.size, queued: this.#queued.length, delivering: this.#delivering, taken: this.#taken, draining: this.#state === 'draining'
      } satisfies WorkerStatus
    }
  }

  /**
   * A trusted peer may coordinate; so may a replica the campaign's coordinator
   * named, once it comes with a higher term (it took the campaign over).
   */
  #authorize (campaignId: string, from: string, term: number): void {
    if (this.#ports.isTrusted(from)) return
    const known = this.#coordination.get(campaignId)
    if (known != null && (known.coordinator === from || (known.successors.includes(from) && term > known.term))) return
    throw new NotAuthorizedError(`peer ${from} is not trusted by ${this.#ctx.self.peer}; actor 'worker' serves trusted peers only (start that node with --trust ${from})`)
  }

  #onLease (msg: Extract<WorkerRequest, { type: 'lease' }>, coordinator: string): LeaseReply {
    const term = msg.term ?? 0
    this.#authorize(msg.campaignId, coordinator, term)
    const capacity = this.#ports.slots * WORKER_QUEUE_FACTOR
    const reply: LeaseReply = { accepted: [], refused: [], free: 0 }
    const known = this.#coordination.get(msg.campaignId)
    const superseded = known != null && term < known.term
    if (!superseded) this.#coordination.set(msg.campaignId, { coordinator, term, successors: msg.successors ?? known?.successors ?? [] })
    for (const lease of msg.leases) {
      const key = `${msg.campaignId}:${lease.shard.index}`
      const refused = refuseLease({
        state: this.#state,
        supersededBy: superseded ? known : undefined,
        running: this.#running.size,
        queued: this.#queued.length,
        capacity,
        duplicate: this.#running.has(key) || this.#queued.some(t => t.key === key)
      })
      if (refused != null) {
        reply.refused.push({ epoch: lease.epoch, ...refused })
      } else {
        this.#queued.push({
          key, campaignId: msg.campaignId, campaignName: msg.campaignName, coordinator, workload: msg.workload, params: msg.params, lease, abort: new AbortController()
        })
        reply.accepted.push(lease.epoch)
        this.#taken++
      }
    }
    this.#pump()
    reply.free = Math.max(0, capacity - this.#running.size - this.#queued.length)
    return reply
  }

  #onCancel (msg: Extract<WorkerRequest, { type: 'cancel' }>, from: string): { cancelled: number } {
    this.#authorize(msg.campaignId, from, 0)
    const match = (t: Task): boolean => t.campaignId === msg.campaignId && t.coordinator === from && (msg.shards == null || msg.shards.includes(t.lease.shard.index))
    let cancelled = 0
    for (let i = this.#queued.length - 1; i >= 0; i--) {
      if (match(this.#queued[i]!)) {
        this.#queued.splice(i, 1)
        cancelled++
      }
    }
    for (const t of this.#running.values()) {
      if (match(t)) {
        t.aborted = 'cancelled'
        t.abort.abort(new Error('cancelled by the coordinator'))
        cancelled++
      }
    }
    if (cancelled > 0) this.#log.info({ campaign: msg.campaignId, shards: cancelled }, 'cancelled shards')
    return { cancelled }
  }

  /** Another coordinator took the campaign over: its shards' results go there from now on. */
  #onMoved (campaignId: string, to: string, term: number): { ok: boolean } {
    this.#authorize(campaignId, to, term)
    const known = this.#coordination.get(campaignId)
    if (known != null && term <= known.term) return { ok: known.coordinator === to }
    this.#coordination.set(campaignId, { coordinator: to, term, successors: known?.successors ?? [] })
    let moved = 0
    for (const t of [...this.#queued, ...this.#running.values(), ...this.#delivery]) {
      if (t.campaignId === campaignId && t.coordinator !== to) {
        t.coordinator = to
        moved++
      }
    }
    this.#log.info({ campaign: campaignId, coordinator: to, term, shards: moved }, 'the campaign has a new coordinator; results go there now')
    this.#moved.resolve()
    this.#moved = Promise.withResolvers<void>()
    return { ok: true }
  }

  #onDrain (): { idle: Promise<void>, handBack: () => void } {
    this.#become('drain')
    // queued shards have not started: give them back now
    for (const t of this.#queued.splice(0)) this.#release(t, 'worker draining before it started the shard')
    return {
      idle: this.#idle.promise,
      // the drain deadline: give back what still runs
      handBack: () => {
        for (const t of this.#running.values()) {
          t.aborted = 'draining'
          t.abort.abort(new Error('worker draining'))
        }
      }
    }
  }

  #pump (): void {
    while (this.#running.size < this.#ports.slots && this.#queued.length > 0) {
      const task = this.#queued.shift()!
      if (this.#running.size === 0 && this.#delivering === 0) this.#idle = Promise.withResolvers<void>()
      this.#running.set(task.key, task)
      this.#delivering++
      void this.#run(task)
    }
    this.#ports.setBusy(this.#running.size)
  }

  #onTaskDone (key: string): void {
    this.#running.delete(key)
    this.#pump()
    this.#checkIdle()
  }

  #checkIdle (): void {
    if (this.#running.size === 0 && this.#delivering === 0) this.#idle.resolve()
  }

  /** Runs one shard off the mailbox; its end comes back as a task-done message. */
  async #run (task: Task): Promise<void> {
    const started = performance.now()
    const shard = task.lease.shard
    const log = this.#log.child({ campaign: task.campaignId, shard: shard.index, attempt: task.lease.attempt })
    // a timer cleared when the shard ends: AbortSignal.timeout would live for the whole shard timeout (an hour
    // by default), one per shard, and a fast campaign would pile up millions of them
    const limit = deadline(task.lease.timeoutMs, task.abort.signal)
    const signal = limit.signal
    let outcome: Extract<CoordinatorRequest, { type: 'result' }>['outcome'] | undefined
    let timedOut = false
    // shards that take a while are reported RUNNING; quick ones need no extra message
    const startedTimer = setTimeout(() => { this.#progress(task, 0) }, STARTED_AFTER_MS)
    try {
      const files = await shardFiles(this.#ports.blobs, task, signal)
      let lastProgress = 0
      const output = await this.#ports.runners[task.workload.kind].run(shardTask(task, files), {
        signal,
        log,
        progress: (fraction) => {
          const now = Date.now()
          if (now - lastProgress < PROGRESS_EVERY_MS) return
          lastProgress = now
          this.#progress(task, fraction)
        },
        // acknowledged: once it resolves, a retry of this shard resumes from `state`
        checkpoint: async (state) => {
          const msg: CoordinatorRequest = { type: 'checkpoint', campaignId: task.campaignId, index: shard.index, epoch: task.lease.epoch, state }
          const ack = await this.#ctx.ask<{ ok: boolean }>({ peer: task.coordinator, name: COORDINATOR_ACTOR }, msg, { timeoutMs: 30_000 })
          if (!ack.ok) throw new Error('the coordinator refused the checkpoint: this lease has been superseded')
        }
      })
      outcome = { ok: true, output }
    } catch (err) {
      if (task.aborted === 'cancelled') {
        log.info('shard cancelled')
      } else if (task.aborted === 'draining') {
        this.#release(task, 'worker drained before the shard finished')
      } else {
        timedOut = signal.aborted && !task.abort.signal.aborted
        const message = timedOut ? `shard timed out after ${task.lease.timeoutMs} ms` : describeError(err)
        const retryable = err instanceof ShardFailure ? err.retryable : true
        log.warn({ err: message, retryable }, 'shard failed')
        outcome = { ok: false, error: message, retryable }
      }
    }
    clearTimeout(startedTimer)
    limit.clear()
    const durationMs = performance.now() - started
    // per shard, so debug: `zp logs ID --shard I` finds it on nodes run with --log-level debug
    if (outcome?.ok === true) log.debug({ durationMs: Math.round(durationMs) }, 'shard done')
    this.#ports.metrics?.shardEnded({
      campaign: task.campaignId,
      kind: task.workload.kind,
      outcome: outcome == null ? (task.aborted === 'draining' ? 'released' : 'cancelled') : outcome.ok ? 'ok' : 'failed',
      seconds: durationMs / 1000,
      ...(outcome?.ok === true ? { resultRows: outcome.output?.rows?.length ?? 0 } : {}),
      timedOut
    })
    // the slot is free once the work is: delivering the result must not hold it,
    // or the coordinator's next lease would find this worker still full
    await this.#ctx.tell(this.#ctx.self, { type: 'task-done', key: task.key }).catch(() => {})
    if (outcome != null) await this.#deliver(task, outcome, durationMs, log)
    await this.#ctx.tell(this.#ctx.self, { type: 'delivered' }).catch(() => {})
  }

  /** Until the coordinator acknowledges (stored durably), or says the lease is no longer ours. */
  async #deliver (task: Task, outcome: Extract<CoordinatorRequest, { type: 'result' }>['outcome'], durationMs: number, log: Logger): Promise<void> {
    const msg: Extract<CoordinatorRequest, { type: 'result' }> = {
      type: 'result', campaignId: task.campaignId, index: task.lease.shard.index, epoch: task.lease.epoch, attempt: task.lease.attempt, durationMs, outcome
    }
    const giveUpAt = Date.now() + DELIVERY.giveUpMs
    this.#delivery.add(task)
    try {
      await this.#deliverLoop(task, msg, giveUpAt, log)
    } finally {
      this.#delivery.delete(task)
    }
  }

  async #deliverLoop (task: Task, msg: Extract<CoordinatorRequest, { type: 'result' }>, giveUpAt: number, log: Logger): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const moved = this.#moved.promise
      try {
        const ack = await this.#ctx.ask({ peer: task.coordinator, name: COORDINATOR_ACTOR }, msg, { timeoutMs: 30_000, replySchema: ResultAckSchema })
        if (ack.movedTo != null && ack.ok !== true) {
          // the coordinator was replaced: the new one takes the result, if it may
          try {
            this.#onMoved(task.campaignId, ack.movedTo.peer, ack.movedTo.term)
          } catch (err) {
            log.warn({ err: describeError(err) }, 'the coordinator says the campaign moved to a peer this worker does not trust; result dropped')
            return
          }
          if (task.coordinator === ack.movedTo.peer) continue
        }
        if (ack.stale === true && ack.ok !== true) log.info('result refused as stale: the shard belongs to another lease now')
        return
      } catch (err) {
        if ((err as Error).name === 'FrameTooLargeError' && msg.outcome.ok && msg.outcome.output != null) {
          // too large for a message: the coordinator fetches it as a blob instead
          const bytes = new TextEncoder().encode(JSON.stringify(msg.outcome.output))
          msg.outcome = { ok: true, blob: await this.#ports.blobs.offer(task.coordinator, bytes, `${task.campaignId}-${task.lease.shard.index}.json`) }
          continue
        }
        if (Date.now() > giveUpAt) {
          log.error({ err: describeError(err) }, 'gave up delivering a shard result; the coordinator will re-run the shard')
          return
        }
        const wait = backoffDelay(DELIVERY.backoff, attempt)
        log.warn({ err: describeError(err), retryInMs: wait }, 'could not deliver the shard result; retrying')
        await Promise.race([delay(wait), moved])
      }
    }
  }

  #progress (task: Task, fraction: number): void {
    const msg: CoordinatorRequest = { type: 'progress', campaignId: task.campaignId, index: task.lease.shard.index, epoch: task.lease.epoch, fraction }
    void this.#ctx.tell({ peer: task.coordinator, name: COORDINATOR_ACTOR }, msg, { timeoutMs: 5000 }).catch(() => {})
  }

  #release (task: Task, reason: string): void {
    const msg: CoordinatorRequest = { type: 'release', campaignId: task.campaignId, index: task.lease.shard.index, epoch: task.lease.epoch, reason }
    void this.#ctx.ask({ peer: task.coordinator, name: COORDINATOR_ACTOR }, msg, { timeoutMs: 5000 }).catch((err: unknown) => {
      this.#log.warn({ campaign: task.campaignId, shard: task.lease.shard.index, err: describeError(err) }, 'could not hand the shard back; its lease will expire')
    })
  }
}
