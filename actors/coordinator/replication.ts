import type { Logger } from 'pino'
import { decode, encode } from '../../protocols/common/codec.ts'
import {
  AppendReplySchema, MAX_INLINE_OPS_BYTES,
  type AppendReply, type ReplicaOp, type ReplicaRequest, type Snapshot
} from '../../protocols/campaign/replica.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import { describeError, UnavailableError } from '../runtime/errors.ts'
import { quorums, SeqWaiters } from './quorum.ts'

/** How long a replica's acknowledgement lets the coordinator lease work; replicas wait this long before electing. */
export const LEADER_LEASE_MS = 3000
/** an idle group renews its lease this often */
const HEARTBEAT_MS = 1000
const SEND_TIMEOUT_MS = 10_000
const MAX_OPS_PER_APPEND = 1024
/**
 * Group commit: changes wait this long (or until this many are pending) to
 * go out together. Every message costs both ends far more than the bytes in
 * it, so batching is most of what keeps replication cheap; the wait only
 * delays the acknowledgement a worker gets, never the worker.
 */
const FLUSH_MS = 10
const FLUSH_OPS = 256
/** a replica further behind than this gets a snapshot instead of the ops */
const MAX_RETAINED_OPS = 2000
/** how long a result waits for replicas before its worker is told to try again */
export const DURABLE_TIMEOUT_MS = 20_000
const NOT_RUNNING = 'this coordinator no longer runs the campaign'

export { quorums } from './quorum.ts'

export interface ReplicationPorts {
  log: Logger
  ask: (peer: string, msg: ReplicaRequest, timeoutMs: number) => Promise<unknown>
  /** the campaign's whole state as stored now */
  snapshot: () => Promise<Snapshot | undefined>
  /** the workload's files, which a replica needs to take over */
  files: () => BlobRef[]
  /** keeps `bytes` in the blob store for `peer` to fetch */
  offer: (peer: string, bytes: Uint8Array, name: string) => Promise<BlobRef>
  /** lets `peer` fetch the workload's files */
  grantFiles: (peer: string) => void
  isDead: (peer: string) => boolean
  /** another live peer to hold a replica, or nothing */
  pickReplacement: (exclude: Set<string>) => string | undefined
  /** the replicas changed (kept in the campaign record) */
  membersChanged: (members: string[]) => void
  /** a replica answered with a higher term: another coordinator has taken over */
  superseded: (by: { coordinator?: string, term: number }) => void
  /** the coordinator leads again (enough replicas confirmed it): work can be leased */
  leading: () => void
}

interface Member {
  peer: string
  /** last seq the replica confirmed */
  acked: number
  /** it confirmed this coordinator until then (from when the confirmed message was sent) */
  grantedUntil: number
  needsSnapshot: boolean
  inFlight: boolean
  lastSentAt: number
  failures: number
  retryAt: number
}

/**
 * The replicas of one campaign, seen from its coordinator: every change of
 * the campaign's stored state is numbered and streamed to them in order; a
 * change is durable once `lead` replicas hold it; the coordinator leads
 * (leases work) only while `lead` replicas have confirmed it within the
 * leader lease. A replica that lags too far or is new gets a snapshot; a
 * dead one is replaced by another live peer.
 */
export class ReplicaGroup {
  readonly campaignId: string
  readonly term: number
  readonly desired: number
  readonly #ports: ReplicationPorts
  #members: Member[]
  /**
   * Changes are numbered from a base taken from the clock, so a coordinator
   * that restarts (and numbers afresh) still numbers above everything its
   * replicas hold from before: a replica's number says how recent its copy
   * is, which elections compare.
   */
  #seq = Date.now() * 1000
  /** changes not yet held by every replica, each encoded once for all of them */
  readonly #ops: Array<{ seq: number, bytes: Uint8Array }> = []
  readonly #waiters = new SeqWaiters()
  #closed = false
  #hasLed = false
  #kick: ReturnType<typeof setTimeout> | undefined
  /** peers that refused to hold a replica (they do not trust this node): not asked again */
  readonly #refusers = new Set<string>()

  constructor (init: { campaignId: string, term: number, desired: number, members: string[] }, ports: ReplicationPorts) {
    this.campaignId = init.campaignId
    this.term = init.term
    this.desired = init.desired
    this.#ports = ports
    this.#members = init.members.map(peer => this.#member(peer))
    this.#fill()
  }

  get members (): string[] {
    return this.#members.map(m => m.peer)
  }

  get seq (): number {
    return this.#seq
  }

  /** Peers that would not hold a replica: they do not trust this node. */
  get refusers (): string[] {
    return [...this.#refusers]
  }

  /** The highest seq held by `lead` replicas (everything, with none). */
  get durableSeq (): number {
    const { lead } = quorums(this.#members.length)
    if (lead === 0) return this.#seq
    const acked = this.#members.map(m => m.acked).sort((a, b) => b - a)
    return acked[lead - 1] ?? 0
  }

  /** May the coordinator lease work now? */
  leads (now: number): boolean {
    const { lead } = quorums(this.#members.length)
    return this.#members.filter(m => m.grantedUntil > now).length >= lead
  }

  /** Has it led since this group started? (a group that led and no longer does may have been replaced) */
  get hasLed (): boolean {
    return this.#hasLed
  }

  /** Why it does not lead, for the campaign's `waiting`. */
  describe (now: number): string {
    const { lead } = quorums(this.#members.length)
    const confirmed = this.#members.filter(m => m.grantedUntil > now).length
    return `waiting for replicas to confirm this coordinator (${confirmed} of ${lead} needed; replicas: ${this.#members.map(m => m.peer.slice(-8)).join(', ') || 'none'})`
  }

  /** Numbers the changes and starts sending them; returns the seq of the last. */
  push (ops: ReplicaOp[]): number {
    if (this.#members.length === 0) {
      // nobody to send them to: a replica added later starts from a snapshot
      this.#seq += ops.length
      return this.#seq
    }
    for (const op of ops) this.#ops.push({ seq: ++this.#seq, bytes: encode(op) })
    this.#schedule(this.#ops.length >= FLUSH_OPS)
    return this.#seq
  }

  /** How many changes each replica has not confirmed (all retained ones before its first confirmation). */
  lag (): Array<{ peer: string, behind: number }> {
    return this.#members.map(m => ({ peer: m.peer, behind: m.acked === 0 ? this.#ops.length : Math.max(0, this.#seq - m.acked) }))
  }

  /** The highest seq every replica holds. */
  get settledSeq (): number {
    return Math.min(this.#seq, ...this.#members.map(m => m.acked))
  }

  /** Resolves once `seq` is durable; rejects (unavailable) when it is not within the timeout. */
  async durable (seq: number, timeoutMs = DURABLE_TIMEOUT_MS): Promise<void> {
    await this.#wait(seq, false, timeoutMs)
  }

  /** Resolves once every replica holds `seq` (a finished campaign's last state), or rejects after the timeout. */
  async settled (seq: number, timeoutMs: number): Promise<void> {
    await this.#wait(seq, true, timeoutMs)
  }

  async #wait (seq: number, all: boolean, timeoutMs: number): Promise<void> {
    if ((all ? this.settledSeq : this.durableSeq) >= seq) return
    if (this.#closed) throw new UnavailableError(NOT_RUNNING)
    await this.#waiters.wait(seq, all, timeoutMs, () => `not yet confirmed by ${quorums(this.#members.length).lead} replica(s) after ${timeoutMs} ms; try again`)
  }

  /**
   * Called on the coordinator's tick: heartbeats, retries, replacing dead
   * replicas. The replicas change only while this coordinator leads: a
   * replica that confirmed it learns the new list before it could vote, so a
   * coordinator cut off from its replicas can neither lead nor make itself
   * new ones, and the replicas it lost cannot elect anyone behind its back.
   * A dead replica with no live peer to replace it stays listed (it counts
   * as not confirming).
   */
  tick (now: number): void {
    if (this.#closed) return
    let changed = false
    // a peer that refused holds no copy and can vote for nobody: replacing it is safe at any time
    for (const m of [...this.#members]) {
      if (m.inFlight || !this.#refusers.has(m.peer)) continue
      const next = this.#pick()
      this.#ports.log.warn({ campaign: this.campaignId, replica: m.peer, replacement: next ?? null }, 'a peer refused to hold a replica (it does not trust this node); ' + (next != null ? 'replacing it' : 'no other peer can'))
      this.#members = next != null ? this.#members.map(x => x === m ? this.#member(next) : x) : this.#members.filter(x => x !== m)
      changed = true
    }
    if (this.leads(now)) {
      for (const m of [...this.#members]) {
        if (m.inFlight || !this.#ports.isDead(m.peer)) continue
        const next = this.#pick()
        if (next == null) continue
        this.#ports.log.warn({ campaign: this.campaignId, replica: m.peer, replacement: next }, 'a replica died; replacing it')
        this.#members = this.#members.map(x => x === m ? this.#member(next) : x)
        changed = true
      }
      if (this.#fill()) changed = true
    }
    if (changed) this.#ports.membersChanged(this.members)
    for (const m of this.#members) this.#send(m, now)
  }

  /** Replicas that do not hold `seq`. */
  lagging (seq: number): string[] {
    return this.#members.filter(m => m.acked < seq).map(m => m.peer)
  }

  /** Replicas the membership holds dead (a campaign's end does not wait for them). */
  dead (): string[] {
    return this.#members.filter(m => this.#ports.isDead(m.peer)).map(m => m.peer)
  }

  /**
   * Drops replicas from the group (ones that could not catch up with an ended
   * campaign's last state): the record that lists the replicas stops naming
   * them, so nobody takes their copy for a whole one.
   */
  remove (peers: readonly string[]): void {
    const before = this.#members.length
    this.#members = this.#members.filter(m => !peers.includes(m.peer))
    if (this.#members.length !== before) this.#ports.membersChanged(this.members)
  }

  close (): void {
    this.#closed = true
    if (this.#kick != null) clearTimeout(this.#kick)
    this.#waiters.rejectAll(NOT_RUNNING)
  }

  /** Adds replicas up to the desired count from live peers; true when it did. */
  #fill (): boolean {
    let added = false
    while (this.#members.length < this.desired) {
      const next = this.#pick()
      if (next == null) break
      this.#members.push(this.#member(next))
      added = true
    }
    return added
  }

  #pick (): string | undefined {
    return this.#ports.pickReplacement(new Set([...this.#members.map(x => x.peer), ...this.#refusers]))
  }

  #member (peer: string): Member {
    return { peer, acked: 0, grantedUntil: 0, needsSnapshot: true, inFlight: false, lastSentAt: 0, failures: 0, retryAt: 0 }
  }

  #schedule (now = false): void {
    if (this.#closed) return
    if (this.#kick != null) {
      if (!now) return
      clearTimeout(this.#kick)
    }
    this.#kick = setTimeout(() => {
      this.#kick = undefined
      const t = Date.now()
      for (const m of this.#members) this.#send(m, t)
    }, now ? 0 : FLUSH_MS)
  }

  #send (m: Member, now: number): void {
    if (this.#closed || m.inFlight || now < m.retryAt) return
    const behind = m.acked < this.#seq
    if (!m.needsSnapshot && !behind && now - m.lastSentAt < HEARTBEAT_MS) return
    m.inFlight = true
    m.lastSentAt = now
    const sentAt = now
    const work = m.needsSnapshot || (behind && (this.#ops[0]?.seq ?? Infinity) > m.acked + 1) ? this.#sendSnapshot(m) : this.#sendOps(m)
    work
      .then(reply => { this.#answered(m, reply, sentAt) })
      .catch((err: unknown) => {
        if ((err as Error).name === 'NotAuthorizedError') this.#refusers.add(m.peer)
        m.failures++
        m.retryAt = Date.now() + Math.min(5000, 200 * 2 ** Math.min(m.failures, 5))
        if (m.failures === 1 || m.failures % 10 === 0) {
          this.#ports.log.warn({ campaign: this.campaignId, replica: m.peer, err: describeError(err), failures: m.failures }, 'cannot reach a replica; retrying')
        }
      })
      .finally(() => {
        m.inFlight = false
        if (!this.#closed && m.acked < this.#seq && m.failures === 0) this.#schedule()
      })
  }

  get #leader (): { campaignId: string, term: number, members: string[], leaseMs: number } {
    return { campaignId: this.campaignId, term: this.term, members: this.members, leaseMs: LEADER_LEASE_MS }
  }

  async #sendSnapshot (m: Member): Promise<AppendReply> {
    const seq = this.#seq
    const snapshot = await this.#ports.snapshot()
    if (snapshot == null) throw new Error('the campaign is not stored yet')
    const blob = await this.#ports.offer(m.peer, encode(snapshot), `${this.campaignId}-snapshot-${seq}.msgpack`)
    this.#ports.grantFiles(m.peer)
    const msg: ReplicaRequest = { type: 'snapshot', ...this.#leader, seq, blob, files: this.#ports.files() }
    const reply = AppendReplySchema.parse(await this.#ports.ask(m.peer, msg, SEND_TIMEOUT_MS * 3))
    if (reply.ok) m.needsSnapshot = false
    return reply
  }

  /** The next ops the replica lacks: as many as fit in one message, or one too large for any, as a blob. */
  async #sendOps (m: Member): Promise<AppendReply> {
    const first = this.#ops.findIndex(o => o.seq > m.acked)
    const after = m.acked
    const packed: Uint8Array[] = []
    let bytes = 0
    for (let i = Math.max(first, 0); first >= 0 && i < this.#ops.length && packed.length < MAX_OPS_PER_APPEND; i++) {
      const op = this.#ops[i]!.bytes
      if (packed.length > 0 && bytes + op.byteLength > MAX_INLINE_OPS_BYTES) break
      packed.push(op)
      bytes += op.byteLength
    }
    const seq = after + packed.length
    if (packed.length === 1 && bytes > MAX_INLINE_OPS_BYTES) {
      // one op too large for a message: an array of one, as a blob
      const blob = await this.#ports.offer(m.peer, encode([decode(packed[0]!)]), `${this.campaignId}-ops-${seq}.msgpack`)
      return AppendReplySchema.parse(await this.#ports.ask(m.peer, { type: 'append', ...this.#leader, after, seq, blob }, SEND_TIMEOUT_MS))
    }
    const msg: ReplicaRequest = { type: 'append', ...this.#leader, after, seq, ...(packed.length > 0 ? { packed } : {}) }
    return AppendReplySchema.parse(await this.#ports.ask(m.peer, msg, SEND_TIMEOUT_MS))
  }

  #answered (m: Member, reply: AppendReply, sentAt: number): void {
    if (this.#closed) return
    if (reply.term > this.term) {
      this.#ports.superseded({ coordinator: reply.coordinator, term: reply.term })
      return
    }
    if (!reply.ok) {
      if (reply.snapshot === true) {
        m.needsSnapshot = true
      } else {
        m.failures++
        m.retryAt = Date.now() + 1000
        this.#ports.log.warn({ campaign: this.campaignId, replica: m.peer, reason: reply.reason }, 'a replica refused the checkpoint')
      }
      return
    }
    const led = this.leads(Date.now())
    m.failures = 0
    m.acked = reply.seq
    m.grantedUntil = sentAt + LEADER_LEASE_MS
    if (!led && this.leads(Date.now())) {
      this.#hasLed = true
      this.#ports.leading()
    }
    this.#trim()
    this.#waiters.reached(this.durableSeq, this.settledSeq)
  }

  /** Forgets ops every replica holds, and the oldest when one lags too far (it will get a snapshot). */
  #trim (): void {
    const lowest = Math.min(...this.#members.map(m => m.acked), this.#seq)
    let drop = 0
    while (drop < this.#ops.length && (this.#ops[drop]!.seq <= lowest || this.#ops.length - drop > MAX_RETAINED_OPS)) drop++
    if (drop > 0) this.#ops.splice(0, drop)
  }
}
