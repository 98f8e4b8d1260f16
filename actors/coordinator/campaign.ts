import { backoffDelay } from '../../protocols/common/backoff.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { DeadLetter, WorkerStats } from '../../protocols/campaign/status.ts'
import { DurationHistogram } from './durations.ts'
import type { ShardPlan } from './plan.ts'
import { formatRanges, RangeSet } from './ranges.ts'
import { isFinal, nextCampaign, nextShard, type CampaignEvent, type CampaignState, type ShardEvent, type ShardState } from './states.ts'
import { Throughput } from './throughput.ts'

export { FINAL_STATES, type CampaignState } from './states.ts'

export interface LeaseInfo {
  index: number
  epoch: number
  worker: string
  workerName: string
  attempt: number
  leasedAt: number
  /** set when the worker reports it has started (running); until then leased */
  startedAt?: number
  progress: number
  expiresAt: number
}

export type { DeadLetter, WorkerStats } from '../../protocols/campaign/status.ts'

/** Extra time a lease may take beyond the shard timeout: queueing on the worker, fetching blobs, delivery. */
const LEASE_GRACE_MS = 60_000

/**
 * One campaign's shard table and campaign state, moved only through the
 * transition tables in states.ts. Pure: the session does the I/O and tells
 * this what happened, with the time. Shards never leased are only a cursor
 * into the plan and done shards are ranges, so a campaign of a billion shards
 * holds state for the shards in flight, retrying or failed, not for all of them.
 */
export class CampaignRun {
  readonly id: string
  readonly spec: CampaignSpec
  readonly plan: ShardPlan
  readonly createdAt: number
  #state: CampaignState = 'QUEUED'
  startedAt: number | undefined
  endedAt: number | undefined
  /** why ready shards are not being leased right now (no capable peer, no free slot) */
  waiting: string | undefined

  #cursor = 0
  /** shards whose lease ended without an attempt counted: first in line */
  #requeued: number[] = []
  /** shards that failed and wait out their backoff */
  readonly #retrying = new Map<number, number>()
  readonly #leases = new Map<number, LeaseInfo>()
  readonly #done = new RangeSet()
  /** errors each shard itself raised (lost workers do not count), and on which workers */
  readonly #failures = new Map<number, number>()
  /** per shard, the worker of each failed attempt */
  readonly #failedOn = new Map<number, string[]>()
  readonly #dead = new Map<number, DeadLetter>()
  #epoch = 0
  readonly #workers = new Map<string, WorkerStats>()
  /** run times of the shards completed under this coordinator, like the worker stats */
  readonly durations = new DurationHistogram()
  readonly throughput = new Throughput()

  constructor (init: { id: string, spec: CampaignSpec, plan: ShardPlan, createdAt: number }) {
    this.id = init.id
    this.spec = init.spec
    this.plan = init.plan
    this.createdAt = init.createdAt
    if (init.plan.count === 0) this.#settle(init.createdAt)
  }

  get state (): CampaignState { return this.#state }
  get total (): number { return this.plan.count }
  get doneCount (): number { return this.#done.count }
  get deadCount (): number { return this.#dead.size }
  get leaseCount (): number { return this.#leases.size }
  get finished (): boolean { return isFinal(this.#state) }
  /** the last epoch granted */
  get epoch (): number { return this.#epoch }

  /** Where shard `index` stands, from the table's own records. */
  stateOf (index: number): ShardState {
    if (this.#done.has(index)) return 'done'
    if (this.#dead.has(index)) return 'failed'
    const lease = this.#leases.get(index)
    if (lease != null) return lease.startedAt != null ? 'running' : 'leased'
    if (this.#retrying.has(index)) return 'retrying'
    return 'pending'
  }

  isDone (index: number): boolean {
    return this.#done.has(index)
  }

  /** The shards done, as ranges (`0-63,65`). */
  doneRanges (): string {
    return formatRanges(this.#done)
  }

  lease (index: number): LeaseInfo | undefined {
    return this.#leases.get(index)
  }

  leases (): IterableIterator<LeaseInfo> {
    return this.#leases.values()
  }

  deadLetters (): DeadLetter[] {
    return [...this.#dead.values()].sort((a, b) => a.index - b.index)
  }

  workers (): WorkerStats[] {
    return [...this.#workers.values()]
  }

  /** attempts shard `index` has failed so far */
  failures (index: number): number {
    return this.#failures.get(index) ?? 0
  }

  /** the worker of each failed attempt of shard `index` */
  failedOn (index: number): readonly string[] {
    return this.#failedOn.get(index) ?? []
  }

  /**
   * Leases to `worker` the given due retries, then up to `fresh` shards:
   * handed-back ones first, then shards never leased. Which retry goes where
   * is scheduling's choice (see assign: not where it failed, if it can help it).
   */
  grantNext (fresh: number, worker: string, workerName: string, now: number, retries: readonly number[] = []): LeaseInfo[] {
    const out: LeaseInfo[] = []
    for (const index of retries) {
      const readyAt = this.#retrying.get(index)
      if (readyAt == null || readyAt > now) continue
      const lease = this.grant(index, worker, workerName, now)
      if (lease != null) out.push(lease)
    }
    for (const index of this.#takeFresh(fresh)) out.push(this.grant(index, worker, workerName, now)!)
    return out
  }

  /** Shards ready to lease now, other than retries (an upper bound: after a resume, some ahead of the cursor are done). */
  freshCount (cap: number): number {
    if (this.#state === 'STOPPED' || this.finished) return 0
    return Math.min(cap, this.#requeued.length + (this.plan.count - this.#cursor))
  }

  /** Retries whose backoff has passed, oldest first, with the workers each failed on. */
  dueRetries (now: number, limit: number): Array<{ index: number, failedOn: readonly string[] }> {
    if (this.#state === 'STOPPED' || this.finished || this.#retrying.size === 0) return []
    return [...this.#retrying].filter(([, readyAt]) => readyAt <= now).sort((a, b) => a[1] - b[1]).slice(0, limit)
      .map(([index]) => ({ index, failedOn: this.#failedOn.get(index) ?? [] }))
  }

  #takeFresh (n: number): number[] {
    const out: number[] = []
    if (this.#state === 'STOPPED' || this.finished) return out
    while (out.length < n && this.#requeued.length > 0) {
      const index = this.#requeued.shift()!
      if (this.stateOf(index) === 'pending') out.push(index)
    }
    while (out.length < n && this.#cursor < this.plan.count) {
      // a resumed campaign's cursor starts at 0: shards already settled are skipped a range at a time
      const index = this.#done.nextAbsent(this.#cursor)
      this.#cursor = index + 1
      if (index >= this.plan.count) break
      if (this.stateOf(index) === 'pending') out.push(index)
    }
    return out
  }

  /**
   * Brings back what a checkpoint recorded (after a restart or a takeover):
   * finished shards, failure counts, dead letters, and the epoch to continue
   * from (epochs only grow, so a lease granted before is never confused with
   * one granted after).
   */
  restore (saved: { state: CampaignState, failures: Iterable<[number, number, string[]]>, dead: Iterable<DeadLetter>, epoch: number, startedAt?: number }, now: number): void {
    for (const [index, n, on] of saved.failures) {
      this.#failures.set(index, n)
      if (on.length > 0) this.#failedOn.set(index, on)
    }
    for (const d of saved.dead) this.#dead.set(d.index, d)
    this.#epoch = Math.max(this.#epoch, saved.epoch)
    this.startedAt = saved.startedAt
    if (saved.state === 'STOPPED') this.#state = 'STOPPED'
    else if (this.#done.count > 0 || this.#dead.size > 0 || saved.state === 'RUNNING') this.#state = 'RUNNING'
    this.#checkSettled(now)
  }

  /** A shard found done in the checkpoint (restore feeds them in shard order). */
  restoreDone (index: number): void {
    this.#done.add(index)
  }

  /** Hand shard `index` to `worker`: a new epoch, the attempt number it is on. */
  grant (index: number, worker: string, workerName: string, now: number): LeaseInfo | undefined {
    if (!this.#shard(index, 'lease')) return undefined
    this.#retrying.delete(index)
    const info: LeaseInfo = {
      index,
      epoch: ++this.#epoch,
      worker,
      workerName,
      attempt: (this.#failures.get(index) ?? 0) + 1,
      leasedAt: now,
      progress: 0,
      expiresAt: now + this.spec.shardTimeoutMs + LEASE_GRACE_MS
    }
    this.#leases.set(index, info)
    if (this.#campaign('lease')) this.startedAt = now
    this.waiting = undefined
    return info
  }

  /** Progress from the worker holding the lease; the first report marks it running. */
  progress (index: number, epoch: number, worker: string, fraction: number, now: number): void {
    const lease = this.#leases.get(index)
    if (lease == null || lease.epoch !== epoch || lease.worker !== worker) return
    if (lease.startedAt == null && this.#shard(index, 'start')) lease.startedAt = now
    lease.progress = Math.max(lease.progress, fraction)
  }

  /**
   * A shard's result has been stored durably. The first result of a shard wins
   * (results are deterministic); a later one is a duplicate and changes
   * nothing. Returns the lease another worker still holds for it, if any, so
   * the caller can cancel it.
   */
  complete (index: number, worker: string, now: number, run: { durationMs: number }): { duplicate: boolean, supersedes?: LeaseInfo } {
    if (!this.#shard(index, 'complete')) return { duplicate: true }
    const lease = this.#leases.get(index)
    this.#leases.delete(index)
    this.#dead.delete(index)
    this.#retrying.delete(index)
    this.#failedOn.delete(index)
    this.#done.add(index)
    this.throughput.add(now)
    const stats = this.#workerStats(worker, lease?.worker === worker ? lease.workerName : undefined)
    stats.done++
    stats.busyMs += run.durationMs
    this.durations.add(run.durationMs)
    this.#checkSettled(now)
    return { duplicate: false, supersedes: lease != null && lease.worker !== worker ? lease : undefined }
  }

  /**
   * The shard itself failed under lease `epoch`. It is retried with backoff
   * until its attempts run out, then dead-lettered; a non-retryable failure
   * dead-letters it at once. A failure from a superseded lease is ignored.
   */
  fail (index: number, epoch: number, worker: string, error: string, retryable: boolean, now: number): 'retry' | 'dead' | 'stale' {
    const lease = this.#leases.get(index)
    if (lease == null || lease.epoch !== epoch || lease.worker !== worker) return 'stale'
    const attempts = (this.#failures.get(index) ?? 0) + 1
    const outcome = failureOutcome(this.spec.retry, attempts, retryable)
    if (!this.#shard(index, outcome === 'dead' ? 'fail-final' : 'fail-retry')) return 'stale'
    this.#leases.delete(index)
    this.#failures.set(index, attempts)
    this.#failedOn.set(index, [...this.#failedOn.get(index) ?? [], worker])
    this.#workerStats(worker, lease.workerName).failed++
    if (outcome === 'dead') {
      this.#dead.set(index, { index, attempts, error })
      this.#checkSettled(now)
      return 'dead'
    }
    const r = this.spec.retry
    this.#retrying.set(index, now + backoffDelay({ initialMs: r.initialDelayMs, factor: r.backoffFactor, maxMs: r.maxDelayMs }, attempts))
    return 'retry'
  }

  /** Put a lease's shard back without counting an attempt (worker lost, lease expired, handed back, not delivered). */
  requeue (index: number, epoch?: number): boolean {
    const lease = this.#leases.get(index)
    if (lease == null || (epoch != null && lease.epoch !== epoch)) return false
    if (!this.#shard(index, 'requeue')) return false
    this.#leases.delete(index)
    this.#requeued.push(index)
    return true
  }

  /** Every lease `worker` holds goes back to the queue. */
  workerLost (worker: string): LeaseInfo[] {
    const lost = [...this.#leases.values()].filter(l => l.worker === worker)
    for (const l of lost) this.requeue(l.index)
    return lost
  }

  /** The worker still holds the shard, queued where it runs (a detached campaign's Slurm queue): its deadline starts again. */
  extend (index: number, epoch: number, worker: string, now: number): void {
    const lease = this.#leases.get(index)
    if (lease == null || lease.epoch !== epoch || lease.worker !== worker || lease.startedAt != null) return
    lease.expiresAt = now + this.spec.shardTimeoutMs + LEASE_GRACE_MS
  }

  /** Leases past their deadline (a silent worker) go back to the queue. */
  expire (now: number): LeaseInfo[] {
    const expired = [...this.#leases.values()].filter(l => l.expiresAt < now)
    for (const l of expired) this.requeue(l.index)
    return expired
  }

  /** Stops leasing; returns the leases to cancel on their workers. Finished shards are kept. */
  cancel (now: number): LeaseInfo[] | undefined {
    if (!this.#campaign('cancel')) return undefined
    const out = [...this.#leases.values()]
    this.#leases.clear()
    this.#retrying.clear()
    this.#requeued = []
    this.endedAt = now
    this.waiting = undefined
    return out
  }

  /** Its coordinator's node stopped running it (--no-resume): nothing is leased until it resumes. */
  stop (): boolean {
    if (!this.#campaign('stop')) return false
    this.waiting = undefined
    return true
  }

  resume (now: number): boolean {
    if (!this.#campaign('resume')) return false
    this.#checkSettled(now)
    return true
  }

  /** Fraction done, counting running shards' reported progress. */
  progressFraction (): number {
    if (this.plan.count === 0) return 1
    let partial = 0
    for (const l of this.#leases.values()) partial += l.progress
    return Math.min(1, (this.#done.count + this.#dead.size + partial) / this.plan.count)
  }

  #shard (index: number, event: ShardEvent): boolean {
    return nextShard(this.stateOf(index), event) != null
  }

  /** Moves the campaign by `event`; false when the table has no such move from where it stands. */
  #campaign (event: CampaignEvent): boolean {
    const next = nextCampaign(this.#state, event)
    if (next == null) return false
    this.#state = next
    return true
  }

  #workerStats (peer: string, name?: string): WorkerStats {
    let s = this.#workers.get(peer)
    if (s == null) {
      s = { peer, name: name ?? peer, done: 0, failed: 0, busyMs: 0 }
      this.#workers.set(peer, s)
    } else if (name != null) {
      s.name = name
    }
    return s
  }

  #checkSettled (now: number): void {
    if (this.#done.count + this.#dead.size !== this.plan.count) return
    this.#settle(now)
  }

  #settle (now: number): void {
    // a cancelled campaign keeps results that arrive late, and stays cancelled
    if (this.#campaign(this.#dead.size > 0 ? 'failed' : 'succeeded')) {
      this.endedAt = now
      this.waiting = undefined
    }
  }
}

/** What a failure on attempt `attempts` leads to: another try, or the dead letter. */
export function failureOutcome (retry: { maxAttempts: number }, attempts: number, retryable: boolean): 'retry' | 'dead' {
  return !retryable || attempts >= retry.maxAttempts ? 'dead' : 'retry'
}
