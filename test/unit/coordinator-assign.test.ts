import { describe, expect, it } from 'vitest'
import { assign, type Demand } from '../../actors/coordinator/assign.ts'
import { CommitQueue } from '../../actors/coordinator/commit.ts'
import { judgeResult } from '../../actors/coordinator/results.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { copyKind } from '../../node/campaign/lookup.ts'
import type { CampaignRecord, ReplicaOp } from '../../protocols/campaign/replica.ts'

function peer (id: string, slots = 1, caps: string[] = []): PeerView {
  return {
    peerId: id, name: id, state: 'alive', slots: { total: slots, free: slots }, self: false,
    capabilities: {
      probedAt: 0, durationMs: 0,
      host: { hostname: id, platform: 'linux', arch: 'x64', cpuModel: 'x', cpuVendor: 'x', cores: 2, physicalCores: 2, memoryBytes: 2 ** 32 },
      capabilities: Object.fromEntries(['cpu.x86', ...caps].map(c => [c, { status: 'ok' as const }]))
    }
  } as unknown as PeerView
}

function demand (over: Partial<Demand> = {}): Demand {
  return { id: 'c-a', priority: 'NORMAL', createdAt: 0, requires: { capabilities: [], minMemoryBytes: 0 }, retries: [], fresh: 0, inFlight: 0, ...over }
}

const none = new Map<string, number>()

describe('assign', () => {
  it('sends a retry to a peer it has not failed on, even when the peer it failed on has more room', () => {
    const peers = [peer('p1', 4), peer('p2', 1), peer('p3', 1)]
    const { grants } = assign([demand({ retries: [{ index: 7, failedOn: ['p1'] }] })], peers, none, 0, none)
    expect(grants).toHaveLength(1)
    expect(grants[0]).toMatchObject({ retries: [7], fresh: 0 })
    expect(grants[0]!.peer).not.toBe('p1')
  })

  it('spreads twelve successive retries of a shard over the peers rather than one', () => {
    const peers = [peer('p1', 2), peer('p2', 2), peer('p3', 2)]
    const failedOn: string[] = []
    for (let attempt = 0; attempt < 12; attempt++) {
      const { grants } = assign([demand({ retries: [{ index: 0, failedOn: [...failedOn] }] })], peers, none, 0, none)
      failedOn.push(grants[0]!.peer)
    }
    expect(new Set(failedOn)).toEqual(new Set(['p1', 'p2', 'p3']))
    for (const p of ['p1', 'p2', 'p3']) expect(failedOn.filter(x => x === p)).toHaveLength(4)
  })

  it('fills peers with the most room first, counting room across campaigns by priority', () => {
    const peers = [peer('p1', 1), peer('p2', 3)]
    const high = demand({ id: 'c-high', priority: 'HIGH', createdAt: 5, fresh: 7 })
    const low = demand({ id: 'c-low', priority: 'LOW', createdAt: 1, fresh: 10 })
    const { grants, waiting } = assign([low, high], peers, none, 0, none)
    // room: p2 6, p1 2 (slots × queue factor); the HIGH campaign first
    expect(grants.filter(g => g.campaignId === 'c-high').map(g => [g.peer, g.fresh])).toEqual([['p2', 6], ['p1', 1]])
    expect(grants.filter(g => g.campaignId === 'c-low').map(g => [g.peer, g.fresh])).toEqual([['p1', 1]])
    expect(waiting.size).toBe(0)
  })

  it('says why a campaign waits: nobody capable, fenced, or only queued behind other work', () => {
    const peers = [peer('p1', 1)]
    const fpga = demand({ id: 'c-fpga', fresh: 1, requires: { capabilities: ['fpga.x'], minMemoryBytes: 0 } })
    const fenced = demand({ id: 'c-fenced', fresh: 1, fenced: 'waiting for replicas to confirm this coordinator' })
    const full = new Map([['p1', 2]])
    const queued = demand({ id: 'c-queued', fresh: 1 })
    const running = demand({ id: 'c-running', fresh: 1, inFlight: 2 })
    const { grants, waiting } = assign([fpga, fenced, queued, running], peers, none, 0, full)
    expect(grants).toEqual([])
    expect(waiting.get('c-fpga')).toMatch(/no peer meets the requirements \(fpga\.x\)/)
    expect(waiting.get('c-fenced')).toMatch(/replicas to confirm/)
    expect(waiting.get('c-queued')).toBe('queued: the one capable peer is busy with other work')
    // a running campaign whose workers are full is just running: nothing to report
    expect(waiting.has('c-running')).toBe(true)
    expect(waiting.get('c-running')).toBeUndefined()
  })

  it('an exec campaign no peer can run says how to offer the template', () => {
    const { waiting } = assign([demand({ fresh: 1, requires: { capabilities: ['exec.rlc'], minMemoryBytes: 0 } })], [peer('p1')], none, 0, none)
    expect(waiting.get('c-a')).toMatch(/--exec-config FILE defines the template rlc/)
  })

  it('leaves a peer that refused a lease alone until its backoff ends', () => {
    const peers = [peer('p1', 1), peer('p2', 1)]
    const { grants } = assign([demand({ fresh: 10 })], peers, new Map([['p1', 100]]), 50, none)
    expect(grants.map(g => g.peer)).toEqual(['p2'])
  })
})

describe('judging a result', () => {
  it('by where its shard stands and whether the sender held it', () => {
    expect(judgeResult('done', true, true)).toBe('duplicate')
    expect(judgeResult('done', false, false)).toBe('duplicate')
    expect(judgeResult('running', false, true)).toBe('not-held')
    expect(judgeResult('pending', true, true)).toBe('store')
    expect(judgeResult('running', true, false)).toBe('failure')
  })
})

describe('the commit queue', () => {
  it('writes commits in order, one write at a time, batching those made meanwhile, and pushes each batch after it is written', async () => {
    const writes: number[][] = []
    const pushed: number[][] = []
    let inFlight = 0
    let release: (() => void) | undefined
    const q = new CommitQueue({
      apply: async (ops) => {
        inFlight++
        expect(inFlight).toBe(1)
        writes.push(ops.map(o => (o as { index: number }).index))
        await new Promise<void>(resolve => { release = resolve })
        inFlight--
      },
      push: (ops) => { pushed.push(ops.map(o => (o as { index: number }).index)); return pushed.length }
    })
    const op = (index: number): ReplicaOp => ({ op: 'shard', index, state: { failures: 0 } })
    const first = q.commit([op(1)])
    const second = q.commit([op(2)])
    const third = q.commit([op(3), op(4)])
    await Promise.resolve()
    expect(writes).toEqual([[1]])
    expect(pushed).toEqual([])
    release!()
    expect(await first).toBe(1)
    await new Promise(resolve => setImmediate(resolve))
    expect(writes).toEqual([[1], [2, 3, 4]])
    release!()
    expect(await second).toBe(2)
    expect(await third).toBe(2)
    expect(pushed).toEqual([[1], [2, 3, 4]])
  })

  it('a failed write rejects its commits and pushes nothing; later commits go on', async () => {
    let fail = true
    const pushed: ReplicaOp[][] = []
    const q = new CommitQueue({
      apply: async () => { if (fail) throw new Error('disk full') },
      push: (ops) => { pushed.push(ops); return 1 }
    })
    await expect(q.commit([{ op: 'leases', put: [], del: [1] }])).rejects.toThrow('disk full')
    fail = false
    await q.commit([{ op: 'leases', put: [], del: [2] }])
    expect(pushed).toEqual([[{ op: 'leases', put: [], del: [2] }]])
  })
})

describe('which copy answers for a campaign', () => {
  const record = (over: Partial<CampaignRecord>): CampaignRecord => ({ id: 'c-x00001', state: 'RUNNING', ...over }) as CampaignRecord
  it('the coordinator, a replica copy that reached the end, or one that may be behind', () => {
    expect(copyKind(record({}), undefined)).toBe('coordinator')
    expect(copyKind(undefined, record({ state: 'SUCCEEDED' }))).toBe('final-copy')
    expect(copyKind(undefined, record({ state: 'RUNNING' }))).toBe('stale-copy')
    // the deposed coordinator's own copy stopped when it was taken over
    expect(copyKind(record({ movedTo: { peer: 'p2', term: 1 } }), undefined)).toBe('deposed')
    expect(copyKind(record({ movedTo: { peer: 'p2', term: 1 } }), record({ state: 'SUCCEEDED' }))).toBe('final-copy')
    expect(copyKind(undefined, undefined)).toBeUndefined()
  })
})
