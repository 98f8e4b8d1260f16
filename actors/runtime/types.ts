import type { ZodType } from 'zod'
import type { Logger } from 'pino'

/** Where an actor lives: a peer (its PeerId as a string) and a name unique on that peer. */
export interface ActorAddress {
  peer: string
  name: string
}

/**
 * Who may send to an actor from another peer:
 * - `local`: nobody; the actor is reachable from its own node only.
 * - `public`: any peer of the mesh (the transport has authenticated it).
 * - `trusted`: the node itself and the peers its trust policy admits.
 */
export type Access = 'local' | 'public' | 'trusted'

export interface MessageMeta {
  /** the sending peer, authenticated by the transport (the local peer for local sends) */
  from: string
  kind: 'tell' | 'ask'
  self: ActorAddress
  /** for asks: fires when the asker stops waiting (its timeout, its abort, or a cancel from its peer) */
  signal?: AbortSignal
}

/**
 * A reply that is not ready yet, and must not hold the mailbox while it is
 * awaited (a result waiting for replicas to confirm it): the actor goes on to
 * its next message, and the ask is answered when `settled` settles. A typed
 * actor error it rejects with is the answer; any other rejection is reported
 * as unavailable, without restarting the actor.
 */
export class Later<T = unknown> {
  readonly settled: Promise<T>
  constructor (settled: Promise<T>) {
    this.settled = settled
  }
}

/** What an actor does with a message; the return value is the reply to an `ask`. */
export interface Behavior<M = unknown> {
  receive: (msg: M, meta: MessageMeta) => unknown
  /** called once when the behaviour is replaced (restart) or the actor stops */
  stopped?: () => void | Promise<void>
  /**
   * A child gave up after too many crashes. Return normally to accept it;
   * throw (the default when this is absent) to escalate to this actor's parent.
   */
  childFailed?: (child: string, error: Error) => void
}

export interface BackoffPolicy {
  initialMs: number
  factor: number
  maxMs: number
}

export interface SupervisionPolicy {
  /** restarts allowed within `withinMs` before the actor is stopped and its parent told */
  maxRestarts: number
  withinMs: number
  backoff: BackoffPolicy
}

export interface ActorDefinition<M = unknown> {
  access?: Access
  /** every message from another peer is validated against this before the actor sees it */
  schema?: ZodType<M>
  mailboxSize?: number
  supervision?: Partial<SupervisionPolicy>
  /** builds a fresh behaviour: on spawn and again on every restart */
  create: (ctx: ActorContext) => Behavior<M>
}

export interface SendOptions {
  signal?: AbortSignal
  /** how long to wait (for mailbox room, and for the reply of an ask) */
  timeoutMs?: number
}

export interface AskOptions<R = unknown> extends SendOptions {
  /** validates the reply; without it the reply is returned as received */
  replySchema?: ZodType<R>
}

/**
 * Time as actors see it. The host's clock, so a test can drive it (vitest's
 * fake timers drive the system clock, which looks `Date.now` and `setTimeout`
 * up at each call).
 */
export interface Clock {
  now: () => number
  setTimeout: (fn: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => { clearTimeout(handle as ReturnType<typeof setTimeout>) }
}

/**
 * Timers owned by one incarnation of an actor: each delivers a message to the
 * actor itself (so it is handled in mailbox order, like any other), and all of
 * them stop when the behaviour stops or is replaced by a restart. A timer
 * message that finds the mailbox full is dropped: timers carry ticks, which the
 * next one repeats.
 */
export interface ActorTimers {
  /** `msg` to this actor once, after `ms`; the returned function cancels it */
  after: (ms: number, msg: unknown) => () => void
  /** `msg` to this actor every `ms`; the returned function cancels it */
  every: (ms: number, msg: unknown) => () => void
}

export interface ActorContext {
  readonly self: ActorAddress
  readonly log: Logger
  /** aborted when this behaviour stops or is replaced by a restart: every wait and fetch it starts takes it */
  readonly signal: AbortSignal
  /** the host's clock */
  now: () => number
  readonly timers: ActorTimers
  spawn: <C>(name: string, def: ActorDefinition<C>) => ActorRef<C>
  tell: (to: ActorAddress, msg: unknown, opts?: SendOptions) => Promise<void>
  ask: <R = unknown>(to: ActorAddress, msg: unknown, opts?: AskOptions<R>) => Promise<R>
}

/** What the host gives a cell; the cell adds what belongs to each incarnation. */
export type HostContext = Omit<ActorContext, 'signal' | 'timers'>

export interface ActorRef<M = unknown> {
  readonly address: ActorAddress
  tell: (msg: M, opts?: SendOptions) => Promise<void>
  ask: <R = unknown>(msg: M, opts?: AskOptions<R>) => Promise<R>
}

/** The wire-facing request and transport are defined with the actor protocol. */
export type { RemoteRequest, RemoteTransport } from '../../protocols/actor/types.ts'

export interface TrustPolicy {
  isTrusted: (peer: string) => boolean
}
