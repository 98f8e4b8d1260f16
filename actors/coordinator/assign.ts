import { WORKER_QUEUE_FACTOR } from '../../protocols/campaign/messages.ts'
import { PRIORITIES, type Priority, type Requirements } from '../../protocols/campaign/spec.ts'
import type { PeerView } from '../membership/membership.ts'
import { canWork, missing, noPeerReason } from './match.ts'

/** What scheduling needs to know of one campaign. */
export interface Demand {
  id: string
  priority: Priority
  createdAt: number
  requires: Requirements
  /** retries whose backoff has passed, with the worker of each failed attempt */
  retries: ReadonlyArray<{ index: number, failedOn: readonly string[] }>
  /** other shards it could lease now (an upper bound) */
  fresh: number
  /** leases it has in flight */
  inFlight: number
  /** why it may not lease now (its replicas do not confirm its coordinator), or nothing */
  fenced?: string
}

/** Shards of a campaign for one peer: these retries, and up to `fresh` others. */
export interface Grant {
  campaignId: string
  peer: string
  peerName: string
  retries: number[]
  fresh: number
}

export interface Assignment {
  grants: Grant[]
  /** each campaign with ready shards that got none: why (undefined: nothing worth telling, it is only queued) */
  waiting: Map<string, string | undefined>
}

const RANK = Object.fromEntries(PRIORITIES.map((p, i) => [p, i])) as Record<Priority, number>

/**
 * Matches campaigns' ready shards to capable peers with room: campaigns by
 * priority, then age; each peer's room (its slots times the queue factor,
 * less what it holds of every campaign) is counted across all of them. A
 * retry goes to the peer with room where it failed least often (so a shard
 * that fails on one node is tried on the others), fresh shards fill the
 * peers with the most room first. Pure: the coordinator takes the shards and
 * sends the leases.
 */
export function assign (demands: readonly Demand[], peers: readonly PeerView[], busyUntil: ReadonlyMap<string, number>, now: number, inFlight: ReadonlyMap<string, number>): Assignment {
  const grants: Grant[] = []
  const waiting = new Map<string, string | undefined>()
  const held = new Map(inFlight)
  const room = (p: PeerView): number => (busyUntil.get(p.peerId) ?? 0) > now ? 0 : p.slots.total * WORKER_QUEUE_FACTOR - (held.get(p.peerId) ?? 0)
  const working = peers.filter(canWork)
  const ordered = demands.filter(d => d.fresh + d.retries.length > 0).sort((a, b) => RANK[b.priority] - RANK[a.priority] || a.createdAt - b.createdAt)
  for (const d of ordered) {
    const capable = working.filter(p => missing(p, d.requires).length === 0)
    if (capable.length === 0) {
      waiting.set(d.id, noPeerReason([...peers], d.requires))
      continue
    }
    if (d.fenced != null) {
      waiting.set(d.id, d.fenced)
      continue
    }
    const mine = new Map<string, Grant>()
    const grantFor = (p: PeerView): Grant => {
      let g = mine.get(p.peerId)
      if (g == null) {
        g = { campaignId: d.id, peer: p.peerId, peerName: p.name, retries: [], fresh: 0 }
        mine.set(p.peerId, g)
      }
      held.set(p.peerId, (held.get(p.peerId) ?? 0) + 1)
      return g
    }
    for (const r of d.retries) {
      const fails = (p: PeerView): number => r.failedOn.filter(w => w === p.peerId).length
      const best = capable.filter(p => room(p) > 0).sort((a, b) => fails(a) - fails(b) || room(b) - room(a) || a.peerId.localeCompare(b.peerId))[0]
      if (best != null) grantFor(best).retries.push(r.index)
    }
    let left = d.fresh
    const byRoom = capable.map(p => ({ p, free: room(p) })).filter(x => x.free > 0)
      .sort((a, b) => b.free - a.free || (held.get(a.p.peerId) ?? 0) - (held.get(b.p.peerId) ?? 0) || a.p.peerId.localeCompare(b.p.peerId))
    for (const { p, free } of byRoom) {
      if (left <= 0) break
      const n = Math.min(free, left)
      const g = grantFor(p)
      g.fresh += n
      held.set(p.peerId, (held.get(p.peerId) ?? 0) + n - 1)
      left -= n
    }
    if (mine.size === 0) {
      // every capable peer is full: normal while the campaign runs; worth saying only when it has nothing running
      waiting.set(d.id, d.inFlight > 0 ? undefined : `queued: ${capable.length === 1 ? 'the one capable peer is' : `all ${capable.length} capable peers are`} busy with other work`)
      continue
    }
    grants.push(...mine.values())
  }
  return { grants, waiting }
}
