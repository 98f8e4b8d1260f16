import type { Logger } from 'pino'
import { backoffDelay } from '../../protocols/common/backoff.ts'
import { ActorFailedError, ActorStoppingError, AskTimeoutError, describeError, isActorError, UnavailableError } from './errors.ts'
import { Mailbox } from './mailbox.ts'
import { Later, type ActorContext, type ActorDefinition, type Behavior, type Clock, type HostContext, type MessageMeta, type SupervisionPolicy } from './types.ts'

export const DEFAULT_SUPERVISION: SupervisionPolicy = {
  maxRestarts: 5,
  withinMs: 30_000,
  backoff: { initialMs: 50, factor: 2, maxMs: 5_000 }
}
export const DEFAULT_MAILBOX_SIZE = 1024

export interface Envelope {
  msg: unknown
  meta: MessageMeta
  /** set for asks */
  reply?: { resolve: (value: unknown) => void, reject: (err: Error) => void }
  /** epoch ms after which nobody waits for this ask any more */
  expiresAt?: number
}

export type CellState = 'running' | 'restarting' | 'stopped'

/** Raised in a parent when a child gives up and the parent has no `childFailed` handler. */
export class EscalationError extends Error {
  override name = 'EscalationError'
}

/**
 * One actor: its mailbox, its current behaviour, and its supervision. Messages
 * are processed strictly one at a time in arrival order. A behaviour that
 * throws is replaced by a fresh one after a backoff; past the restart limit the
 * actor stops and its parent decides (accept, or escalate further up).
 */
export class Cell {
  readonly name: string
  readonly def: ActorDefinition<any>
  readonly mailbox: Mailbox<Envelope>
  readonly parent: Cell | undefined
  readonly children = new Set<Cell>()
  state: CellState = 'running'

  #behavior: Behavior<any> = { receive: () => undefined }
  #policy: SupervisionPolicy
  #crashes: number[] = []
  #processing = false
  #restartTimer: unknown
  readonly #ctx: HostContext
  readonly #clock: Clock
  readonly #log: Logger
  readonly #onStopped: (cell: Cell) => void
  /** the current incarnation's lifetime and timers: ended on stop and on every restart */
  #life = new AbortController()
  readonly #timers = new Set<unknown>()

  constructor (init: { name: string, def: ActorDefinition<any>, parent?: Cell, ctx: HostContext, clock: Clock, onStopped: (cell: Cell) => void }) {
    this.name = init.name
    this.def = init.def
    this.parent = init.parent
    this.#ctx = init.ctx
    this.#clock = init.clock
    this.#log = init.ctx.log
    this.#onStopped = init.onStopped
    this.#policy = {
      ...DEFAULT_SUPERVISION,
      ...init.def.supervision,
      backoff: { ...DEFAULT_SUPERVISION.backoff, ...init.def.supervision?.backoff }
    }
    this.mailbox = new Mailbox<Envelope>(init.def.mailboxSize ?? DEFAULT_MAILBOX_SIZE)
  }

  /** Builds the first behaviour; separate from construction so `create` may spawn children of this cell. */
  start (): void {
    this.#behavior = this.def.create(this.#incarnation())
  }

  /** A context for a new behaviour: a fresh lifetime signal and no timers. */
  #incarnation (): ActorContext {
    this.#life = new AbortController()
    const life = this.#life
    const schedule = (ms: number, msg: unknown, repeat: boolean): () => void => {
      let handle: unknown
      const fire = (): void => {
        this.#timers.delete(handle)
        if (life.signal.aborted) return
        if (repeat) arm()
        this.offer({ msg, meta: { from: this.#ctx.self.peer, kind: 'tell', self: this.#ctx.self } })
      }
      const arm = (): void => {
        handle = this.#clock.setTimeout(fire, ms)
        this.#timers.add(handle)
      }
      arm()
      return () => {
        this.#clock.clearTimeout(handle)
        this.#timers.delete(handle)
      }
    }
    return {
      ...this.#ctx,
      signal: life.signal,
      timers: {
        after: (ms, msg) => schedule(ms, msg, false),
        every: (ms, msg) => schedule(ms, msg, true)
      }
    }
  }

  /** Ends the current incarnation: its signal fires and its timers stop. */
  #endIncarnation (): void {
    for (const handle of this.#timers) this.#clock.clearTimeout(handle)
    this.#timers.clear()
    this.#life.abort(new ActorStoppingError(`actor '${this.name}' ${this.state === 'stopped' ? 'stopped' : 'restarted'}`))
  }

  /** Queue without waiting; false when the mailbox is full. */
  offer (env: Envelope): boolean {
    if (this.state === 'stopped') {
      env.reply?.reject(new ActorStoppingError(`actor '${this.name}' has stopped`))
      return true
    }
    const ok = this.mailbox.offer(env)
    if (ok) this.#kick()
    return ok
  }

  /** Queue, waiting for room (backpressure) until `signal` fires. */
  async put (env: Envelope, signal?: AbortSignal): Promise<void> {
    if (this.offer(env)) return
    await this.mailbox.put(env, signal)
    if (this.state === 'stopped') {
      env.reply?.reject(new ActorStoppingError(`actor '${this.name}' has stopped`))
      return
    }
    this.#kick()
  }

  #kick (): void {
    if (this.#processing || this.state !== 'running' || this.mailbox.size === 0) return
    this.#processing = true
    queueMicrotask(() => { void this.#run() })
  }

  async #run (): Promise<void> {
    try {
      while (this.state === 'running') {
        const env = this.mailbox.shift()
        if (env == null) break
        if (env.meta.signal?.aborted === true || (env.expiresAt != null && this.#clock.now() > env.expiresAt)) {
          // nobody waits for the answer any more: do not spend the work
          env.reply?.reject(new AskTimeoutError(`ask to '${this.name}' was abandoned by its asker before the actor reached it`))
          continue
        }
        try {
          let result = this.#behavior.receive(env.msg, env.meta)
          if (isThenable(result)) result = await result
          if (result instanceof Later) {
            const reply = env.reply
            result.settled.then(
              (value) => { reply?.resolve(value) },
              (err: unknown) => { reply?.reject(isActorError(err) ? err : new UnavailableError(`actor '${this.name}' could not answer: ${describeError(err)}`)) })
            continue
          }
          env.reply?.resolve(result)
        } catch (err) {
          // a typed actor error is an answer (not found, unavailable…): the actor is fine
          if (isActorError(err)) {
            env.reply?.reject(err)
            continue
          }
          env.reply?.reject(new ActorFailedError(`actor '${this.name}' failed: ${describeError(err)}`))
          this.#crash(err)
          break
        }
      }
    } finally {
      this.#processing = false
    }
    // a message may have arrived between the last shift and clearing the flag
    this.#kick()
  }

  #crash (err: unknown): void {
    const now = this.#clock.now()
    this.#crashes = this.#crashes.filter(t => now - t < this.#policy.withinMs)
    this.#crashes.push(now)
    const count = this.#crashes.length
    if (count > this.#policy.maxRestarts) {
      this.#log.error({ actor: this.name, err: describeError(err), crashes: count, withinMs: this.#policy.withinMs },
        'actor crashed too often; stopping it and escalating to its parent')
      const error = err instanceof Error ? err : new Error(String(err))
      void this.stop().then(() => this.parent?.childFailed(this.name, error))
      return
    }
    const delayMs = backoffDelay(this.#policy.backoff, count)
    this.#log.warn({ actor: this.name, err: describeError(err), restart: count, delayMs }, 'actor crashed; restarting after backoff')
    this.state = 'restarting'
    this.#endIncarnation()
    this.#restartTimer = this.#clock.setTimeout(() => { void this.#restart() }, delayMs)
  }

  async #restart (): Promise<void> {
    this.#restartTimer = undefined
    if (this.state !== 'restarting') return
    await this.#stopChildren()
    await this.#callStopped()
    try {
      this.#behavior = this.def.create(this.#incarnation())
    } catch (err) {
      this.state = 'running'
      this.#crash(err)
      return
    }
    this.state = 'running'
    this.#kick()
  }

  /** A child stopped after too many crashes. */
  childFailed (child: string, error: Error): void {
    if (this.state === 'stopped') return
    try {
      if (this.#behavior.childFailed == null) {
        throw new EscalationError(`child '${child}' failed: ${error.message}`)
      }
      this.#behavior.childFailed(child, error)
    } catch (err) {
      if (this.state === 'running') this.#crash(err)
    }
  }

  async stop (): Promise<void> {
    if (this.state === 'stopped') return
    this.state = 'stopped'
    if (this.#restartTimer != null) this.#clock.clearTimeout(this.#restartTimer)
    this.#endIncarnation()
    await this.#stopChildren()
    for (const env of this.mailbox.drain()) {
      env.reply?.reject(new ActorStoppingError(`actor '${this.name}' stopped before handling the message`))
    }
    await this.#callStopped()
    this.#onStopped(this)
  }

  async #stopChildren (): Promise<void> {
    await Promise.all([...this.children].map(async c => { await c.stop() }))
  }

  async #callStopped (): Promise<void> {
    try {
      await this.#behavior.stopped?.()
    } catch (err) {
      this.#log.warn({ actor: this.name, err: describeError(err) }, 'actor stop hook failed')
    }
  }
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function'
}
