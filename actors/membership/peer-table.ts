import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import type { Advert, Heartbeat, Load, Slots } from '../../protocols/membership/schema.ts'
import { nextState, type LivenessEvent, type LivenessTimings, type PeerState } from './liveness.ts'

export interface PeerRecord {
  peerId: string
  name: string
  state: PeerState
  /** why the peer is in its state, e.g. "no heartbeat for 8.2 s" */
  reason: string
  multiaddrs: string[]
  capabilities: CapabilityReport | null
  capsHash: string
  slots: Slots
  /** its hardware load from its last heartbeat; null when that carried none */
  load: Load | null
  incarnation: number
  seq: number
  /** epoch ms of the last heartbeat, hello or advert from it */
  lastSeenMs: number
  /** epoch ms of the last state change */
  stateSince: number
  connected: boolean
  /** the peer said goodbye; it is not redialled */
  left: boolean
}

export interface Transition {
  peerId: string
  name: string
  from: PeerState | 'unknown'
  to: PeerState
  reason: string
  multiaddrs: string[]
  left: boolean
}

/**
 * Everything this node believes about the other peers. Pure: time comes in
 * as arguments, effects go out as return values, so every rule is testable
 * without a network or a timer.
 */
export class PeerTable {
  readonly #peers = new Map<string, PeerRecord>()
  readonly #timings: LivenessTimings

  constructor (timings: LivenessTimings) {
    this.#timings = timings
  }

  get (peerId: string): PeerRecord | undefined {
    return this.#peers.get(peerId)
  }

  list (): PeerRecord[] {
    return [...this.#peers.values()]
  }

  /**
   * A heartbeat or advert from `peerId`. Stale ones (an older incarnation, or
   * a sequence number already seen) are ignored, so a delayed message can never
   * resurrect a peer. Returns the transition, if any, and whether its full
   * capabilities should be fetched.
   */
  observe (peerId: string, hb: Heartbeat | Advert, now: number): { transition?: Transition, fresh: boolean, needCaps: boolean } {
    let rec = this.#peers.get(peerId)
    if (rec != null && isStale(rec, hb)) return { fresh: false, needCaps: false }
    const isNew = rec == null
    if (rec == null) {
      rec = {
        peerId,
        name: hb.name,
        state: 'suspect',
        reason: 'not heard from yet',
        multiaddrs: [],
        capabilities: null,
        capsHash: '',
        slots: hb.slots,
        load: null,
        incarnation: hb.incarnation,
        seq: hb.seq,
        lastSeenMs: now,
        stateSince: now,
        connected: false,
        left: false
      }
      this.#peers.set(peerId, rec)
    }
    const restarted = hb.incarnation > rec.incarnation
    rec.name = hb.name
    rec.incarnation = hb.incarnation
    rec.seq = hb.seq
    rec.slots = hb.slots
    rec.load = hb.load ?? null
    rec.lastSeenMs = now
    if (hb.multiaddrs.length > 0) rec.multiaddrs = hb.multiaddrs
    if ('capabilities' in hb && hb.capabilities != null) {
      rec.capabilities = hb.capabilities
      rec.capsHash = hb.capsHash
    }
    const needCaps = hb.state !== 'left' && hb.capsHash !== rec.capsHash
    rec.left = hb.state === 'left'
    const event: LivenessEvent = hb.state === 'left' ? 'left' : hb.state === 'draining' ? 'heard-draining' : 'heard-alive'
    const reason = hb.state === 'left' ? 'left the mesh (clean stop)' : restarted ? 'restarted' : `heard ${hb.state}`
    const transition = isNew
      ? this.#enter(rec, event === 'heard-draining' ? 'draining' : event === 'left' ? 'dead' : 'alive', reason, now, 'unknown')
      : this.#apply(rec, event, reason, now)
    return { transition, fresh: true, needCaps }
  }

  connection (peerId: string, connected: boolean, now: number): Transition | undefined {
    const rec = this.#peers.get(peerId)
    if (rec == null) return undefined
    rec.connected = connected
    return connected ? undefined : this.#apply(rec, 'connection-lost', 'connection lost', now)
  }

  unreachable (peerId: string, why: string, now: number): Transition | undefined {
    const rec = this.#peers.get(peerId)
    if (rec == null || rec.connected) return undefined
    return this.#apply(rec, 'unreachable', `unreachable: ${why}`, now)
  }

  /** Applies silence rules; returns the transitions they caused. */
  tick (now: number): Transition[] {
    const out: Transition[] = []
    for (const rec of this.#peers.values()) {
      const silentMs = now - rec.lastSeenMs
      const event: LivenessEvent | undefined = silentMs > this.#timings.deadAfterMs
        ? 'silent-dead'
        : silentMs > this.#timings.suspectAfterMs ? 'silent-suspect' : undefined
      if (event == null) continue
      const t = this.#apply(rec, event, `no heartbeat for ${(silentMs / 1000).toFixed(1)} s`, now)
      if (t != null) out.push(t)
    }
    return out
  }

  /** Drops peers that have been dead for longer than `forgetAfterMs`. */
  forget (now: number, forgetAfterMs: number): string[] {
    const gone: string[] = []
    for (const rec of this.#peers.values()) {
      if (rec.state === 'dead' && now - rec.stateSince > forgetAfterMs) {
        this.#peers.delete(rec.peerId)
        gone.push(rec.peerId)
      }
    }
    return gone
  }

  #apply (rec: PeerRecord, event: LivenessEvent, reason: string, now: number): Transition | undefined {
    const to = nextState(rec.state, event)
    if (to == null || to === rec.state) return undefined
    return this.#enter(rec, to, reason, now, rec.state)
  }

  #enter (rec: PeerRecord, to: PeerState, reason: string, now: number, from: PeerState | 'unknown'): Transition {
    rec.state = to
    rec.reason = reason
    rec.stateSince = now
    return { peerId: rec.peerId, name: rec.name, from, to, reason, multiaddrs: rec.multiaddrs, left: rec.left }
  }
}

/**
 * Older incarnation, or an older beat of this one. The same beat again is
 * stale too, unless it brings the capabilities that beat announced.
 */
function isStale (rec: PeerRecord, hb: Heartbeat | Advert): boolean {
  if (hb.incarnation !== rec.incarnation) return hb.incarnation < rec.incarnation
  if (hb.seq !== rec.seq) return hb.seq < rec.seq
  return !('capabilities' in hb && hb.capabilities != null && rec.capsHash !== hb.capsHash)
}
