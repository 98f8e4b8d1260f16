import { backoffDelay, type Backoff } from '../../protocols/common/backoff.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { MEMBERSHIP_ACTOR } from '../../protocols/membership/constants.ts'
import {
  AdvertSchema, HelloReplySchema, MembershipRequestSchema,
  type Advert, type Heartbeat, type HelloReply, type Load, type MembershipRequest, type Slots
} from '../../protocols/membership/schema.ts'
import { describeError } from '../runtime/errors.ts'
import type { ActorContext, ActorDefinition, Behavior, MessageMeta } from '../runtime/types.ts'
import { DEFAULT_TIMINGS, type LivenessTimings, type PeerState } from './liveness.ts'
import { PeerTable, type PeerRecord, type Transition } from './peer-table.ts'

export { MEMBERSHIP_ACTOR }

/** The effects membership needs from the node, kept narrow so tests can fake them. */
export interface MeshPort {
  publish: (hb: Heartbeat) => Promise<void>
  /** connect (no-op when already connected); rejects when the peer cannot be reached */
  connect: (peerId: string, multiaddrs: string[], signal: AbortSignal) => Promise<void>
  isConnected: (peerId: string) => boolean
}

export interface MembershipInit {
  self: string
  name: string
  incarnation: number
  port: MeshPort
  timings?: Partial<LivenessTimings>
  /** how long a dead peer stays listed (and redialled) before it is forgotten */
  forgetAfterMs?: number
  multiaddrs: () => string[]
  slots: () => Slots
  /** the node's last hardware load sample, carried in its heartbeats; null while there is none */
  load?: () => Load | null
  /** every change of a peer's state, for logs and for actors that react to it */
  onTransition?: (t: Transition) => void
}

export interface PeerView extends PeerRecord {
  self: boolean
}

export type SelfState = 'alive' | 'draining' | 'left'

type LocalMessage =
  | { type: 'heartbeat', peer: string, hb: Heartbeat }
  | { type: 'connected', peer: string, outbound: boolean }
  | { type: 'disconnected', peer: string }
  | { type: 'tick' }
  | { type: 'beat' }
  | { type: 'hello-reply', peer: string, reply: HelloReply }
  | { type: 'advert-reply', peer: string, advert: Advert }
  | { type: 'unreachable', peer: string, why: string }
  | { type: 'dialled', peer: string }
  | { type: 'list' }
  | { type: 'set-state', state: SelfState }
  | { type: 'set-capabilities', report: CapabilityReport, hash: string }
  /** peers remembered from an earlier run: dial them */
  | { type: 'seed', peers: Array<{ peerId: string, multiaddrs: string[] }> }

export type MembershipMessage = MembershipRequest | LocalMessage

const REDIAL: Backoff = { initialMs: 1000, factor: 2, maxMs: 30_000, jitter: 0.2 }
const DEFAULT_FORGET_AFTER_MS = 10 * 60_000

/**
 * The membership actor: publishes this node's heartbeat, keeps the peer table,
 * exchanges hellos (adverts plus the peers each side knows, so a node joined
 * through A finds B), fetches capabilities when a peer's change, confirms lost
 * connections by redialling, and keeps trying dead peers until forgotten.
 */
export function membershipActor (init: MembershipInit): ActorDefinition<MembershipMessage> {
  return {
    access: 'public',
    // only hello/advert may come from other peers; the rest is local plumbing
    schema: MembershipRequestSchema as never,
    mailboxSize: 4096,
    create: (ctx) => new Membership(init, ctx)
  }
}

class Membership implements Behavior<MembershipMessage> {
  readonly #init: MembershipInit
  readonly #ctx: ActorContext
  readonly #timings: LivenessTimings
  readonly #table: PeerTable
  readonly #busy = new Set<string>()
  readonly #redials = new Map<string, { attempt: number, at: number }>()
  #state: SelfState = 'alive'
  #seq = 0
  #caps: CapabilityReport | null = null
  #capsHash = ''

  constructor (init: MembershipInit, ctx: ActorContext) {
    this.#init = init
    this.#ctx = ctx
    this.#timings = { ...DEFAULT_TIMINGS, ...init.timings }
    this.#table = new PeerTable(this.#timings)
    ctx.timers.every(this.#timings.heartbeatMs, { type: 'beat' } satisfies LocalMessage)
    ctx.timers.every(Math.min(250, this.#timings.heartbeatMs / 4), { type: 'tick' } satisfies LocalMessage)
  }

  receive (msg: MembershipMessage, meta: MessageMeta): unknown {
    const local = meta.from === this.#init.self
    switch (msg.type) {
      case 'hello': return this.#onHello(meta.from, msg.advert)
      case 'advert': return this.#advert()
      case 'announce': this.#observe(meta.from, msg.heartbeat, this.#ctx.now()); return { ok: true }
    }
    if (!local) return undefined
    const now = this.#ctx.now()
    switch (msg.type) {
      case 'heartbeat': this.#observe(msg.peer, msg.hb, now); return
      case 'connected': this.#onConnected(msg.peer, msg.outbound, now); return
      case 'disconnected': this.#onDisconnected(msg.peer, now); return
      case 'tick': this.#onTick(now); return
      case 'beat': void this.#publish(); return
      case 'hello-reply': this.#onHelloReply(msg.peer, msg.reply, now); return
      case 'advert-reply': this.#observe(msg.peer, msg.advert, now); return
      case 'unreachable': this.#emit(this.#table.unreachable(msg.peer, msg.why, now)); return
      case 'dialled': this.#redials.delete(msg.peer); return
      case 'list': return this.#list(now)
      case 'set-state': this.#state = msg.state; return this.#announce()
      case 'seed': for (const p of msg.peers) if (this.#table.get(p.peerId) == null) this.#dial(p.peerId, p.multiaddrs); return
      case 'set-capabilities': this.#caps = msg.report; this.#capsHash = msg.hash; void this.#publish(); return
    }
  }

  /**
   * A change of our own state: gossip reaches everyone but is fire-and-forget,
   * so connected peers also get it acknowledged (a goodbye must not be lost
   * when the connections close right after it).
   */
  async #announce (): Promise<void> {
    const publishing = this.#publish()
    const heartbeat = this.#heartbeat()
    const peers = this.#table.list().filter(p => p.state !== 'dead' && this.#init.port.isConnected(p.peerId))
    await Promise.allSettled([publishing, ...peers.map(async p => {
      await this.#ctx.ask({ peer: p.peerId, name: MEMBERSHIP_ACTOR }, { type: 'announce', heartbeat }, { timeoutMs: this.#timings.redialTimeoutMs })
    })])
  }

  #heartbeat (): Heartbeat {
    const load = this.#init.load?.() ?? null
    return {
      v: 1,
      name: this.#init.name,
      incarnation: this.#init.incarnation,
      seq: this.#seq,
      state: this.#state,
      multiaddrs: this.#init.multiaddrs().slice(0, 32),
      slots: this.#init.slots(),
      capsHash: this.#capsHash,
      ...(load != null ? { load } : {})
    }
  }

  #advert (): Advert {
    return { ...this.#heartbeat(), capabilities: this.#caps }
  }

  /** Publishes at once; the promise (awaited only by set-state) settles once it is sent. */
  async #publish (): Promise<void> {
    this.#seq++
    await this.#init.port.publish(this.#heartbeat()).catch((err: unknown) => {
      this.#ctx.log.debug({ err: describeError(err) }, 'heartbeat publish failed')
    })
  }

  #observe (peer: string, hb: Heartbeat | Advert, now: number): void {
    if (peer === this.#init.self) return
    const { transition, fresh, needCaps } = this.#table.observe(peer, hb, now)
    if (!fresh) return
    const rec = this.#table.get(peer)!
    rec.connected = this.#init.port.isConnected(peer)
    this.#emit(transition)
    if (rec.state === 'dead') return
    if (!rec.connected) this.#dial(peer, rec.multiaddrs)
    else if (needCaps) this.#fetchAdvert(peer)
  }

  #onHello (from: string, advert: Advert): HelloReply {
    this.#observe(from, advert, this.#ctx.now())
    const peers = this.#table.list()
      .filter(p => p.peerId !== from && p.state !== 'dead' && p.multiaddrs.length > 0)
      .map(p => ({ peerId: p.peerId, multiaddrs: p.multiaddrs }))
    return { advert: this.#advert(), peers }
  }

  #onHelloReply (peer: string, reply: HelloReply, now: number): void {
    this.#observe(peer, reply.advert, now)
    for (const known of reply.peers) {
      if (known.peerId === this.#init.self || this.#table.get(known.peerId) != null) continue
      this.#dial(known.peerId, known.multiaddrs)
    }
  }

  #onConnected (peer: string, outbound: boolean, now: number): void {
    this.#redials.delete(peer)
    this.#emit(this.#table.connection(peer, true, now))
    // the dialling side introduces itself; the other side learns from the hello
    if (!outbound || this.#busy.has(`hello:${peer}`)) return
    this.#background(`hello:${peer}`, async () => {
      const reply = await this.#ctx.ask({ peer, name: MEMBERSHIP_ACTOR }, { type: 'hello', advert: this.#advert() }, {
        timeoutMs: this.#timings.redialTimeoutMs * 2, replySchema: HelloReplySchema
      })
      return { type: 'hello-reply', peer, reply }
    })
  }

  #onDisconnected (peer: string, now: number): void {
    const rec = this.#table.get(peer)
    this.#emit(this.#table.connection(peer, false, now))
    if (rec == null || rec.left) return
    // a killed process closes its sockets at once: confirm with one quick redial
    this.#dial(peer, rec.multiaddrs)
  }

  #onTick (now: number): void {
    for (const t of this.#table.tick(now)) this.#emit(t)
    for (const peer of this.#table.forget(now, this.#init.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS)) {
      this.#redials.delete(peer)
      this.#ctx.log.info({ peer }, 'forgot peer that stayed dead')
    }
    for (const rec of this.#table.list()) {
      if (rec.state !== 'dead' || rec.left || rec.connected || rec.multiaddrs.length === 0) continue
      const due = this.#redials.get(rec.peerId)
      if (due == null) {
        this.#redials.set(rec.peerId, { attempt: 1, at: now + backoffDelay(REDIAL, 1) })
      } else if (now >= due.at) {
        due.attempt++
        due.at = now + backoffDelay(REDIAL, due.attempt)
        this.#dial(rec.peerId, rec.multiaddrs)
      }
    }
  }

  #dial (peer: string, multiaddrs: string[]): void {
    if (peer === this.#init.self) return
    this.#background(`dial:${peer}`, async () => {
      try {
        await this.#init.port.connect(peer, multiaddrs, AbortSignal.any([this.#ctx.signal, AbortSignal.timeout(this.#timings.redialTimeoutMs)]))
        return { type: 'dialled', peer }
      } catch (err) {
        return { type: 'unreachable', peer, why: describeError(err) }
      }
    })
  }

  #fetchAdvert (peer: string): void {
    this.#background(`advert:${peer}`, async () => {
      const advert = await this.#ctx.ask({ peer, name: MEMBERSHIP_ACTOR }, { type: 'advert' }, {
        timeoutMs: this.#timings.redialTimeoutMs * 2, replySchema: AdvertSchema
      })
      return { type: 'advert-reply', peer, advert }
    })
  }

  /** Runs I/O off the mailbox; its outcome comes back as a message, so state only changes in receive. */
  #background (key: string, work: () => Promise<LocalMessage>): void {
    if (this.#busy.has(key)) return
    this.#busy.add(key)
    work()
      .then(async msg => { await this.#ctx.tell(this.#ctx.self, msg) })
      .catch((err: unknown) => { this.#ctx.log.debug({ task: key, err: describeError(err) }, 'membership task failed') })
      .finally(() => { this.#busy.delete(key) })
  }

  #emit (t: Transition | undefined): void {
    if (t == null) return
    this.#ctx.log.info({ peer: t.peerId, peerName: t.name, from: t.from, to: t.to, reason: t.reason }, `peer ${t.name} is ${t.to.toUpperCase()}`)
    this.#init.onTransition?.(t)
  }

  #list (now: number): PeerView[] {
    const self: PeerView = {
      peerId: this.#init.self,
      name: this.#init.name,
      state: (this.#state === 'left' ? 'dead' : this.#state) satisfies PeerState,
      reason: 'this node',
      multiaddrs: this.#init.multiaddrs(),
      capabilities: this.#caps,
      capsHash: this.#capsHash,
      slots: this.#init.slots(),
      load: this.#init.load?.() ?? null,
      incarnation: this.#init.incarnation,
      seq: this.#seq,
      lastSeenMs: now,
      stateSince: this.#init.incarnation,
      connected: true,
      left: this.#state === 'left',
      self: true
    }
    return [self, ...this.#table.list().map(p => ({ ...p, self: false }))]
  }
}
