import { afterEach, describe, expect, it, vi } from 'vitest'
import { LEADER_LEASE_MS, quorums, ReplicaGroup, type ReplicationPorts } from '../../actors/coordinator/replication.ts'
import { silentLogger } from '../../node/logger.ts'
import type { AppendReply, ReplicaRequest } from '../../protocols/campaign/replica.ts'

describe('replication quorums', () => {
  it('never lets a takeover and the old coordinator both hold a quorum, nor two candidates win one term', () => {
    for (let m = 1; m <= 7; m++) {
      const { elect, lead } = quorums(m)
      expect(elect + lead).toBeGreaterThan(m)
      expect(2 * elect).toBeGreaterThan(m)
      expect(lead).toBeGreaterThanOrEqual(1)
    }
    expect(quorums(0)).toEqual({ elect: 1, lead: 0 })
    // the default: two replicas; one confirms the coordinator, both elect its successor
    expect(quorums(2)).toEqual({ elect: 2, lead: 1 })
  })
})

/** Replicas that answer as the replica actor would: ok with the seq they now hold, unless told otherwise. */
function fakeReplicas (peers: string[]): { ports: ReplicationPorts, held: Map<string, number>, answer: Map<string, (msg: ReplicaRequest) => AppendReply | Error>, dead: Set<string>, alive: string[], superseded: Array<{ coordinator?: string, term: number }>, members: string[][] } {
  const held = new Map<string, number>()
  const answer = new Map<string, (msg: ReplicaRequest) => AppendReply | Error>()
  const dead = new Set<string>()
  const alive = [...peers]
  const superseded: Array<{ coordinator?: string, term: number }> = []
  const members: string[][] = []
  const ports: ReplicationPorts = {
    log: silentLogger(),
    ask: async (peer, msg) => {
      const custom = answer.get(peer)?.(msg)
      if (custom instanceof Error) throw custom
      if (custom != null) return custom
      if (msg.type === 'snapshot') held.set(peer, msg.seq)
      if (msg.type === 'append') held.set(peer, msg.seq)
      return { ok: true, term: 0, seq: held.get(peer) ?? 0 }
    },
    snapshot: async () => ({ record: {} as never, results: [], shards: [], leases: [] }),
    files: () => [],
    offer: async (_peer, _bytes, name) => ({ hash: 'a'.repeat(64), size: 0, name }),
    grantFiles: () => {},
    isDead: (peer) => dead.has(peer),
    pickReplacement: (exclude) => alive.find(p => !exclude.has(p) && !dead.has(p)),
    membersChanged: (m) => { members.push(m) },
    superseded: (by) => { superseded.push(by) },
    leading: () => {}
  }
  return { ports, held, answer, dead, alive, superseded, members }
}

async function until (cond: () => boolean): Promise<void> {
  await vi.waitFor(() => { if (!cond()) throw new Error('not yet') }, { timeout: 5000, interval: 5 })
}

let group: ReplicaGroup | undefined
afterEach(() => { group?.close() })

describe('ReplicaGroup', () => {
  it('picks its replicas, leads once one confirms it, and counts a change durable once a replica holds it', async () => {
    const r = fakeReplicas(['p1', 'p2', 'p3'])
    group = new ReplicaGroup({ campaignId: 'c-test000001', term: 0, desired: 2, members: [] }, r.ports)
    expect(group.members).toEqual(['p1', 'p2'])
    expect(group.leads(Date.now())).toBe(false)
    group.tick(Date.now())
    await until(() => group!.leads(Date.now()))
    const seq = group.push([{ op: 'shard', index: 3, state: { failures: 1 } }])
    await group.durable(seq, 5000)
    expect(group.durableSeq).toBeGreaterThanOrEqual(seq)
  })

  it('a replica that refuses the change keeps it from being durable; the wait ends with a clear error', async () => {
    const r = fakeReplicas(['p1'])
    group = new ReplicaGroup({ campaignId: 'c-test000002', term: 0, desired: 1, members: [] }, r.ports)
    group.tick(Date.now())
    await until(() => group!.leads(Date.now()))
    r.answer.set('p1', () => new Error('disk full'))
    const seq = group.push([{ op: 'leases', put: [], del: [1] }])
    await expect(group.durable(seq, 200)).rejects.toThrow(/not yet confirmed by 1 replica\(s\) after 200 ms/)
  })

  it('stops leading when its replicas go quiet, and does not make itself new replicas while it does not lead', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const r = fakeReplicas(['p1', 'p2', 'p3'])
      group = new ReplicaGroup({ campaignId: 'c-test000003', term: 0, desired: 2, members: [] }, r.ports)
      group.tick(Date.now())
      await until(() => group!.leads(Date.now()))
      // cut off: every replica unreachable and dead as far as this node can tell
      r.answer.set('p1', () => new Error('unreachable'))
      r.answer.set('p2', () => new Error('unreachable'))
      r.dead.add('p1').add('p2')
      vi.setSystemTime(Date.now() + LEADER_LEASE_MS + 1)
      expect(group.leads(Date.now())).toBe(false)
      group.tick(Date.now())
      // p3 is alive, but a coordinator that does not lead cannot swap in replicas that would confirm it
      expect(group.members).toEqual(['p1', 'p2'])
      expect(group.leads(Date.now())).toBe(false)
    } finally {
      vi.useRealTimers()
    }
  })

  it('replaces a dead replica while it leads, and a refusing one at any time', async () => {
    const r = fakeReplicas(['p1', 'p2', 'p3', 'p4'])
    group = new ReplicaGroup({ campaignId: 'c-test000004', term: 0, desired: 2, members: [] }, r.ports)
    group.tick(Date.now())
    await until(() => group!.leads(Date.now()))
    r.dead.add('p1')
    group.tick(Date.now())
    expect(group.members).toEqual(['p3', 'p2'])
    const refused = Object.assign(new Error('not trusted'), { name: 'NotAuthorizedError' })
    r.answer.set('p2', () => refused)
    group.push([{ op: 'shard', index: 0, state: { failures: 0 } }])
    await until(() => { group!.tick(Date.now()); return !group!.members.includes('p2') })
    expect(group.members).toEqual(['p3', 'p4'])
    expect(r.members.at(-1)).toEqual(['p3', 'p4'])
  })

  it('steps down when a replica answers with a higher term', async () => {
    const r = fakeReplicas(['p1', 'p2'])
    group = new ReplicaGroup({ campaignId: 'c-test000005', term: 0, desired: 2, members: [] }, r.ports)
    r.answer.set('p2', () => ({ ok: false, term: 1, seq: 0, coordinator: 'p1', reason: 'superseded' }))
    group.tick(Date.now())
    await until(() => r.superseded.length > 0)
    expect(r.superseded[0]).toEqual({ coordinator: 'p1', term: 1 })
  })
})
