import { backoffDelay } from '../../protocols/common/backoff.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import { Bitset } from './bitset.ts'
import type { ShardPlan } from './plan.ts'
import { Throughput } from './throughput.ts'

export type CampaignState = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED'
export const FINAL_STATES: ReadonlySet<CampaignState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED'])

export interface LeaseInfo {
  index: number
  epoch: number
  worker: string
  workerName: string
  attempt: number
  leasedAt: number
  /** set when the worker reports it has started (RUNNING); until then LEASED */
  startedAt?: number
  progress: number
  expiresAt: number
}

export interface DeadLetter {
  index: number
  attempts: number
  error: string
}

export interface WorkerStats {
  peer: string
  name: string
  done: number
  failed: number
  /** shard run time, summed */
  busyMs: number
}

export interface AcceleratorStats {
  shards: number
  busyMs: number
}

/** Extra time a lease may take beyond the shard timeout: queueing on the worker, fetching blobs, delivery. */
const LEASE_GRACE_MS = 60_000

/**
 * One campaign's shard table: PENDING → LEASED → RUNNING → DONE | FAILED.
 * Pure state: the coordinator actor does the I/O and tells this what
 * happened, with the time. Shards not yet handed out are only a cursor into
 * the plan, so a million-shard campaign holds state for the shards in flight,
 * retrying or dead, not for all of them.
 */
export class CampaignRun {
  readonly id: string
  readonly spec: CampaignSpec
  readonly plan: ShardPlan
  readonly createdAt: number
  state: CampaignState = 'QUEUED'
  startedAt: number | undefined
  endedAt: number | undefined
  /** why ready shards are not being leased right now (no capable peer, no free slot) */
  waiting: string | undefined

  #cursor = 0
  #retry: Array<{ index: number, readyAt: number }> = []
  readonly #leases = new Map<number, LeaseInfo>()
  readonly #done: Bitset
  /** errors each shard itself raised (lost workers do not count) */
  readonly #failures = new Map<number, number>()
  readonly #dead = new Map<number, DeadLetter>()
  #epoch = 0
  readonly #workers = new Map<string, WorkerStats>()
  readonly #accelerators = new Map<string, AcceleratorStats>()
  readonly throughput = new Throughput()

  constructor (init: { id: string, spec: CampaignSpec, plan: ShardPlan, createdAt: number }) {
    this.id = init.id
    this.spec = init.spec
    this.plan = init.plan
    this.createdAt = init.createdAt
    this.#done = new Bitset(init.plan.count)
    if (init.plan.count === 0) this.#finish(init.createdAt)
  }

  get total (): number { return this.plan.count }
  get doneCount (): number { return this.#done.count }
  get deadCount (): number { return this.#dead.size }
  get leaseCount (): number { return this.#leases.size }
  get finished (): boolean { return FINAL_STATES.has(this.state) }

  isDone (index: number): boolean {
    return this.#done.has(index)
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

  accelerators (): Map<string, AcceleratorStats> {
    return this.#accelerators
  }

  /** Is anything ready to lease now? (retries whose backoff has passed, or shards never leased) */
  hasReady (now: number): boolean {
    if (this.finished) return false
    return this.#cursor < this.plan.count || this.#retry.some(r => r.readyAt <= now)
  }

  /** When the next retry becomes ready, if only retries are left. */
  nextRetryAt (): number | undefined {
    return this.#retry.length > 0 ? Math.min(...this.#retry.map(r => r.readyAt)) : undefined
  }

  /** Up to `n` shard indexes ready now: due retries first (older work), then fresh shards. */
  take (n: number, now: number): number[] {
    const out: number[] = []
    if (this.finished) return out
    this.#retry.sort((a, b) => a.readyAt - b.readyAt)
    while (out.length < n && this.#retry.length > 0 && this.#retry[0]!.readyAt <= now) {
      const { index } = this.#retry.shift()!
      if (!this.#done.has(index) && !this.#leases.has(index) && !this.#dead.has(index)) out.push(index)
    }
    while (out.length < n && this.#cursor < this.plan.count) {
      const index = this.#cursor++
      // a resumed campaign's cursor starts at 0: shards already settled are skipped
      if (!this.#done.has(index) && !this.#dead.has(index) && !this.#leases.has(index)) out.push(index)
    }
    return out
  }

  /**
   * Brings back what a checkpoint recorded (after a restart): finished shards,
   * failure counts, dead letters, and the epoch to continue from (epochs only
   * grow, so a lease granted before the restart is never confused with one
   * granted after).
   */
  restore (saved: { done: Iterable<number>, failures: Iterable<[number, number]>, dead: Iterable<DeadLetter>, epoch: number, startedAt?: number }, now: number): void {
    for (const index of saved.done) this.#done.add(index)
    for (const [index, n] of saved.failures) this.#failures.set(index, n)
    for (const d of saved.dead) this.#dead.set(d.index, d)
    this.#epoch = Math.max(this.#epoch, saved.epoch)
    this.startedAt = saved.startedAt
    if (this.#done.count > 0 || this.#dead.size > 0) this.state = 'RUNNING'
    this.#checkFinished(now)
  }

  /** the last epoch granted */
  get epoch (): number {
    return this.#epoch
  }

  /** attempts shard `index` has failed so far */
  failures (index: number): number {
    return this.#failures.get(index) ?? 0
  }

  /** Hand shard `index` to `worker`: a new epoch, the attempt number it is on. */
  lease (index: number, worker: string, workerName: string, now: number): LeaseInfo {
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
    if (this.state === 'QUEUED') {
      this.state = 'RUNNING'
      this.startedAt = now
    }
    this.waiting = undefined
    return info
  }

  /** The worker did not take the lease (busy, draining): the shard goes back, first in line. */
  /** A lease that never started (refused, or never delivered) goes back to the front of the queue; false if it was not in force. */
  unlease (index: number, epoch: number): boolean {
    const lease = this.#leases.get(index)
    if (lease?.epoch !== epoch) return false
    this.#leases.delete(index)
    this.#retry.unshift({ index, readyAt: 0 })
    return true
  }

  /** Progress from the worker holding the lease; the first report marks it RUNNING. */
  progress (index: number, epoch: number, worker: string, fraction: number, now: number): void {
    const lease = this.#leases.get(index)
    if (lease == null || lease.epoch !== epoch || lease.worker !== worker) return
    lease.startedAt ??= now
    lease.progress = Math.max(lease.progress, fraction)
  }

  /**
   * A shard's result has been stored durably. The first result of a shard wins
   * (results are deterministic); a later one is a duplicate and changes
   * nothing. Returns the lease another worker still holds for it, if any, so
   * the caller can cancel it.
   */
  complete (index: number, worker: string, now: number, run: { durationMs: number, accelerator: string }): { duplicate: boolean, supersedes?: LeaseInfo } {
    if (!this.#done.add(index)) return { duplicate: true }
    const lease = this.#leases.get(index)
    this.#leases.delete(index)
    this.#dead.delete(index)
    this.throughput.add(now)
    const stats = this.#workerStats(worker, lease?.workerName)
    stats.done++
    stats.busyMs += run.durationMs
    const acc = this.#accelerators.get(run.accelerator) ?? { shards: 0, busyMs: 0 }
    acc.shards++
    acc.busyMs += run.durationMs
    this.#accelerators.set(run.accelerator, acc)
    this.#checkFinished(now)
    return { duplicate: false, supersedes: lease != null && lease.worker !== worker ? lease : undefined }
  }

  /**
   * The shard itself failed under lease `epoch`. It is retried with backoff
   * until its attempts run out, then dead-lettered; a non-retryable failure
   * dead-letters it at once. A failure from a superseded lease is ignored.
   */
  fail (index: number, epoch: number, worker: string, error: string, retryable: boolean, now: number): 'retry' | 'dead' | 'stale' {
    const lease = this.#leases.get(index)
    if (lease == null || lease.epoch !== epoch || lease.worker !== worker || this.#done.has(index)) return 'stale'
    this.#leases.delete(index)
    const attempts = (this.#failures.get(index) ?? 0) + 1
    this.#failures.set(index, attempts)
    this.#workerStats(worker, lease.workerName).failed++
    if (!retryable || attempts >= this.spec.retry.maxAttempts) {
      this.#dead.set(index, { index, attempts, error })
      this.#checkFinished(now)
      return 'dead'
    }
    const r = this.spec.retry
    this.#retry.push({ index, readyAt: now + backoffDelay({ initialMs: r.initialDelayMs, factor: r.backoffFactor, maxMs: r.maxDelayMs }, attempts) })
    return 'retry'
  }

  /** Put a lease's shard back without counting an attempt (worker lost, lease expired, handed back). */
  requeue (index: number, epoch?: number): boolean {
    const lease = this.#leases.get(index)
    if (lease == null || (epoch != null && lease.epoch !== epoch)) return false
    this.#leases.delete(index)
    this.#retry.unshift({ index, readyAt: 0 })
    return true
  }

  /** Every lease `worker` holds goes back to the queue. */
  workerLost (worker: string): number[] {
    const lost = [...this.#leases.values()].filter(l => l.worker === worker).map(l => l.index)
    for (const index of lost) this.requeue(index)
    return lost
  }

  /** Leases past their deadline (a silent worker) go back to the queue. */
  expire (now: number): LeaseInfo[] {
    const expired = [...this.#leases.values()].filter(l => l.expiresAt < now)
    for (const l of expired) this.requeue(l.index)
    return expired
  }

  /** Stops leasing; returns the leases to cancel on their workers. Finished shards are kept. */
  cancel (now: number): LeaseInfo[] {
    if (this.finished) return []
    const out = [...this.#leases.values()]
    this.#leases.clear()
    this.#retry = []
    this.state = 'CANCELLED'
    this.endedAt = now
    this.waiting = undefined
    return out
  }

  /** Fraction done, counting running shards' reported progress. */
  progressFraction (): number {
    if (this.plan.count === 0) return 1
    let partial = 0
    for (const l of this.#leases.values()) partial += l.progress
    return Math.min(1, (this.#done.count + this.#dead.size + partial) / this.plan.count)
  }

  #workerStats (peer: string, name = peer.slice(-8)): WorkerStats {
    let s = this.#workers.get(peer)
    if (s == null) {
      s = { peer, name, done: 0, failed: 0, busyMs: 0 }
      this.#workers.set(peer, s)
    }
    return s
  }

  #checkFinished (now: number): void {
    // a cancelled campaign keeps results that arrive late, and stays cancelled
    if (this.state === 'CANCELLED') return
    if (this.#done.count + this.#dead.size === this.plan.count) this.#finish(now)
  }

  #finish (now: number): void {
    this.state = this.#dead.size > 0 ? 'FAILED' : 'SUCCEEDED'
    this.endedAt = now
    this.waiting = undefined
  }
}
