import type { Logger } from 'pino'
import { deadline, isTimeout, raceSignal } from '../../protocols/common/signals.ts'
import { summarizeIssues } from '../../protocols/common/validate.ts'
import { Cell, type Envelope } from './cell.ts'
import {
  AbortError, ActorStoppingError, AskTimeoutError, InvalidMessageError, MailboxFullError, NoSuchActorError, NotAuthorizedError, PeerUnreachableError
} from './errors.ts'
import {
  systemClock,
  type ActorAddress, type ActorDefinition, type ActorRef, type AskOptions, type Clock, type HostContext, type RemoteRequest, type RemoteTransport, type SendOptions, type TrustPolicy
} from './types.ts'

export const DEFAULT_ASK_TIMEOUT_MS = 30_000

export interface ActorHostInit {
  /** this node's PeerId as a string */
  self: string
  logger: Logger
  trust: TrustPolicy
  /** absent: the host is local-only and remote addresses are unreachable */
  transport?: RemoteTransport
  /** the actors' clock (default: the system's) */
  clock?: Clock
  /** hears how each ask ended and how long it took (the node's Prometheus metrics) */
  metrics?: HostMetrics
}

/** `status`: 'ok', or the actor status of the failure ('timeout', 'peer_unreachable', …; 'error' for others). */
export interface HostMetrics {
  asked: (actor: string, seconds: number, status: string) => void
}

/**
 * The actor host of one node: spawns actors, routes `tell`/`ask` to local
 * mailboxes directly (no codec, no network) and to other peers through the
 * transport, and admits remote messages after the trust and schema checks.
 */
export class ActorHost {
  readonly self: string
  readonly #cells = new Map<string, Cell>()
  readonly #log: Logger
  readonly #trust: TrustPolicy
  readonly #clock: Clock
  readonly #metrics: HostMetrics | undefined
  #transport: RemoteTransport | undefined
  #stopping = false

  constructor (init: ActorHostInit) {
    this.self = init.self
    this.#log = init.logger
    this.#trust = init.trust
    this.#transport = init.transport
    this.#clock = init.clock ?? systemClock
    this.#metrics = init.metrics
  }

  setTransport (transport: RemoteTransport): void {
    this.#transport = transport
  }

  spawn<M>(name: string, def: ActorDefinition<M>): ActorRef<M> {
    return this.#spawn(name, def, undefined)
  }

  #spawn<M>(name: string, def: ActorDefinition<M>, parent: Cell | undefined): ActorRef<M> {
    if (this.#stopping) throw new ActorStoppingError('the actor host is stopping')
    if (name === '' || name.length > 128) throw new RangeError(`actor names are 1-128 characters, got '${name}'`)
    if (this.#cells.has(name)) throw new Error(`an actor named '${name}' already runs on this node`)
    if ((def.access ?? 'local') !== 'local' && def.schema == null) {
      throw new Error(`actor '${name}' is reachable from other peers, so it needs a schema to validate their messages`)
    }
    const address: ActorAddress = { peer: this.self, name }
    let cell: Cell | undefined
    const ctx: HostContext = {
      self: address,
      log: this.#log.child({ actor: name }),
      now: () => this.#clock.now(),
      spawn: (child, childDef) => this.#spawn(child, childDef, cell),
      tell: async (to, msg, opts) => { await this.tell(to, msg, opts) },
      ask: async (to, msg, opts) => await this.ask(to, msg, opts)
    }
    cell = new Cell({
      name,
      def,
      parent,
      ctx,
      clock: this.#clock,
      onStopped: (c) => {
        if (this.#cells.get(c.name) === c) this.#cells.delete(c.name)
        c.parent?.children.delete(c)
      }
    })
    this.#cells.set(name, cell)
    parent?.children.add(cell)
    try {
      cell.start()
    } catch (err) {
      this.#cells.delete(name)
      parent?.children.delete(cell)
      throw err
    }
    return this.ref<M>(address)
  }

  ref<M = unknown>(address: ActorAddress): ActorRef<M> {
    return {
      address,
      tell: async (msg, opts) => { await this.tell(address, msg, opts) },
      ask: async (msg, opts) => await this.ask(address, msg, opts)
    }
  }

  /** Messages waiting in each actor's mailbox. */
  mailboxes (): Array<{ name: string, depth: number }> {
    return [...this.#cells.values()].map(c => ({ name: c.name, depth: c.mailbox.size }))
  }

  has (name: string): boolean {
    return this.#cells.has(name)
  }

  async stopActor (name: string): Promise<void> {
    await this.#cells.get(name)?.stop()
  }

  async tell (to: ActorAddress, msg: unknown, opts: SendOptions = {}): Promise<void> {
    const d = deadline(opts.timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS, opts.signal)
    try {
      if (to.peer === this.self) {
        await this.#local(to.name).put({ msg, meta: { from: this.self, kind: 'tell', self: to } }, d.signal)
      } else {
        await this.#remote(to, { kind: 'tell', to: to.name, body: msg }, d.signal)
      }
    } catch (err) {
      if (d.signal.aborted && err === d.signal.reason && isTimeout(err)) {
        // a tell only waits for room: on its peer, in the stream and the mailbox behind it
        throw new MailboxFullError(`'${to.name}' on ${to.peer === this.self ? 'this node' : `peer ${to.peer}`} took no more messages within ${opts.timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS} ms (backpressure)`)
      }
      throw this.#translateAbort(err, d.signal, to, opts.timeoutMs)
    } finally {
      d.clear()
    }
  }

  async ask<R = unknown>(to: ActorAddress, msg: unknown, opts: AskOptions<R> = {}): Promise<R> {
    const started = performance.now()
    const timeoutMs = opts.timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS
    const d = deadline(timeoutMs, opts.signal)
    let reply: unknown
    try {
      if (to.peer === this.self) {
        const { promise, resolve, reject } = Promise.withResolvers<unknown>()
        // when the asker gives up first, the cell's late rejection has no one to tell
        promise.catch(() => {})
        const env: Envelope = { msg, meta: { from: this.self, kind: 'ask', self: to, signal: d.signal }, reply: { resolve, reject } }
        await this.#local(to.name).put(env, d.signal)
        reply = await raceSignal(promise, d.signal)
      } else {
        reply = await this.#remote(to, { kind: 'ask', to: to.name, body: msg, ttlMs: timeoutMs }, d.signal)
      }
    } catch (err) {
      const failure = this.#translateAbort(err, d.signal, to, timeoutMs)
      this.#metrics?.asked(to.name, (performance.now() - started) / 1000, (failure as { status?: string }).status ?? 'error')
      throw failure
    } finally {
      d.clear()
    }
    this.#metrics?.asked(to.name, (performance.now() - started) / 1000, 'ok')
    if (opts.replySchema == null) return reply as R
    const parsed = opts.replySchema.safeParse(reply)
    if (!parsed.success) {
      throw new InvalidMessageError(`reply from ${to.name}@${to.peer} is invalid: ${summarizeIssues(parsed.error)}`)
    }
    return parsed.data
  }

  /**
   * Admits a message from another peer. Resolves once it is queued (waiting for
   * mailbox room is the backpressure); `reply` settles with the answer to an ask.
   * `signal` aborts the wait for room; `cancel` fires when the remote asker gives up.
   */
  async receiveRemote (from: string, req: RemoteRequest, signal?: AbortSignal, cancel?: AbortSignal): Promise<{ reply?: Promise<unknown> }> {
    if (this.#stopping) throw new ActorStoppingError('this node is stopping')
    const cell = this.#cells.get(req.to)
    if (cell == null || cell.state === 'stopped') throw new NoSuchActorError(`no actor named '${req.to}' on peer ${this.self}`)
    const access = cell.def.access ?? 'local'
    if (access === 'local') throw new NotAuthorizedError(`actor '${req.to}' accepts messages from its own node only`)
    if (access === 'trusted' && from !== this.self && !this.#trust.isTrusted(from)) {
      throw new NotAuthorizedError(`peer ${from} is not trusted by ${this.self}; actor '${req.to}' serves trusted peers only (start that node with --trust ${from})`)
    }
    const parsed = cell.def.schema!.safeParse(req.body)
    if (!parsed.success) throw new InvalidMessageError(`message for actor '${req.to}' is invalid: ${summarizeIssues(parsed.error)}`)
    const self = { peer: this.self, name: req.to }
    if (req.kind === 'tell') {
      await cell.put({ msg: parsed.data, meta: { from, kind: 'tell', self } }, signal)
      return {}
    }
    const { promise, resolve, reject } = Promise.withResolvers<unknown>()
    const expiresAt = req.ttlMs != null ? this.#clock.now() + req.ttlMs : undefined
    await cell.put({ msg: parsed.data, meta: { from, kind: 'ask', self, signal: cancel }, reply: { resolve, reject }, expiresAt }, signal)
    return { reply: promise }
  }

  /** Stops every actor (children with their parents); queued asks are rejected. */
  async stop (): Promise<void> {
    this.#stopping = true
    const roots = [...this.#cells.values()].filter(c => c.parent == null)
    await Promise.all(roots.map(async c => { await c.stop() }))
  }

  #local (name: string): Cell {
    const cell = this.#cells.get(name)
    if (cell == null) throw new NoSuchActorError(`no actor named '${name}' on this node`)
    return cell
  }

  async #remote (to: ActorAddress, req: RemoteRequest, signal: AbortSignal): Promise<unknown> {
    if (this.#transport == null) throw new PeerUnreachableError(`cannot reach peer ${to.peer}: this actor host has no network transport`)
    return await this.#transport.request(to.peer, req, { signal })
  }

  #translateAbort (err: unknown, signal: AbortSignal, to: ActorAddress, timeoutMs: number | undefined): unknown {
    if (!signal.aborted || err !== signal.reason) return err
    if (isTimeout(signal.reason)) {
      return new AskTimeoutError(`no answer from '${to.name}' on ${to.peer === this.self ? 'this node' : `peer ${to.peer}`} within ${timeoutMs ?? DEFAULT_ASK_TIMEOUT_MS} ms`)
    }
    return new AbortError(`request to '${to.name}' was aborted${signal.reason instanceof Error ? `: ${signal.reason.message}` : ''}`)
  }
}
