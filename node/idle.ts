import type { Logger } from 'pino'
import { FINAL_STATES } from '../actors/coordinator/campaign.ts'
import type { CampaignStatus } from '../actors/coordinator/status.ts'
import { REPLICA_ACTOR, type ReplicaMessage } from '../actors/replica/replica.ts'
import { describeError } from '../actors/runtime/errors.ts'
import type { ActorHost } from '../actors/runtime/host.ts'
import { WORKER_ACTOR, type WorkerMessage, type WorkerStatus } from '../actors/worker/worker.ts'
import { formatDuration } from './campaign/duration.ts'

/** What keeps a node from leaving, at one look. */
export interface Duties {
  /** shards queued, running, or whose result is on its way */
  tasks: number
  /** leases the worker has taken in all: a change between two looks is work that came and went unseen */
  taken: number
  /** campaigns this node coordinates that have not ended */
  campaigns: number
  /** replicas it holds of other coordinators' campaigns that have not ended */
  replicas: number
}

export interface IdleClock {
  /** the last look that found a duty (or the start): idle since then */
  since: number
  taken: number
}

/**
 * One look, decided: any duty (or work taken since the last look) restarts
 * the clock; a node idle for `limitMs` leaves. Pure, time passed in.
 */
export function nextIdle (clock: IdleClock, duties: Duties, now: number, limitMs: number): { clock: IdleClock, leave: boolean } {
  const busy = duties.tasks > 0 || duties.campaigns > 0 || duties.replicas > 0 || duties.taken !== clock.taken
  if (busy) return { clock: { since: now, taken: duties.taken }, leave: false }
  return { clock, leave: now - clock.since >= limitMs }
}

/** Looks often enough to leave close to the limit, rarely enough to cost nothing. */
export function lookEveryMs (limitMs: number): number {
  return Math.min(5000, Math.max(250, Math.floor(limitMs / 4)))
}

export interface IdleWatcherInit {
  limitMs: number
  /** what the node is doing now; a look that fails counts as busy */
  duties: () => Promise<Duties>
  /** called once, when the node has been idle for the limit */
  leave: (idleForMs: number) => void
  log: Logger
}

/** zp-node --exit-when-idle: looks at the node's duties now and then, and says when it has had none for the limit. */
export class IdleWatcher {
  readonly #init: IdleWatcherInit
  #timer: ReturnType<typeof setTimeout> | undefined
  #stopped = false

  constructor (init: IdleWatcherInit) {
    this.#init = init
  }

  start (): void {
    let clock: IdleClock = { since: Date.now(), taken: 0 }
    const { limitMs, log } = this.#init
    const look = async (): Promise<void> => {
      let duties: Duties | undefined
      try {
        duties = await this.#init.duties()
      } catch (err) {
        log.debug({ err: describeError(err) }, 'cannot tell whether the node is idle; counting it busy')
      }
      if (this.#stopped) return
      const now = Date.now()
      const next = duties != null ? nextIdle(clock, duties, now, limitMs) : { clock: { ...clock, since: now }, leave: false }
      clock = next.clock
      if (!next.leave) {
        this.#timer = setTimeout(() => { void look() }, lookEveryMs(limitMs))
        return
      }
      this.#stopped = true
      const idleForMs = now - clock.since
      log.info({ idleForMs, exitWhenIdleMs: limitMs }, `idle for ${formatDuration(limitMs)}: draining and exiting`)
      this.#init.leave(idleForMs)
    }
    this.#timer = setTimeout(() => { void look() }, lookEveryMs(limitMs))
  }

  stop (): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }
}

/** The duties of the node whose actors `host` runs, asked of its worker, coordinator and replica actors. */
export function nodeDuties (host: ActorHost, self: string, campaigns: () => Promise<CampaignStatus[]>): () => Promise<Duties> {
  const timeoutMs = 10_000
  return async () => {
    const [worker, coordinated, replicas] = await Promise.all([
      host.ask<WorkerStatus>({ peer: self, name: WORKER_ACTOR }, { type: 'status' } satisfies WorkerMessage, { timeoutMs }),
      campaigns(),
      host.ask<string[]>({ peer: self, name: REPLICA_ACTOR }, { type: 'held' } satisfies ReplicaMessage, { timeoutMs })
    ])
    return {
      tasks: worker.queued + worker.delivering,
      taken: worker.taken,
      // a stopped campaign (--no-resume) waits for `zp resume`, and one taken over runs elsewhere: neither is work here
      campaigns: coordinated.filter(c => c.coordinator === self && c.state !== 'STOPPED' && !FINAL_STATES.has(c.state)).length,
      replicas: replicas.length
    }
  }
}
