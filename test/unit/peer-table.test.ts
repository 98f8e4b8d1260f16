import { describe, expect, it } from 'vitest'
import { nextState, type LivenessEvent, type PeerState } from '../../actors/membership/liveness.ts'
import { PeerTable } from '../../actors/membership/peer-table.ts'
import type { Heartbeat } from '../../protocols/membership/schema.ts'

const timings = { heartbeatMs: 1000, suspectAfterMs: 4000, deadAfterMs: 8000, redialTimeoutMs: 2000 }
const hb = (over: Partial<Heartbeat> = {}): Heartbeat => ({
  v: 1, name: 'p', incarnation: 100, seq: 1, state: 'alive', multiaddrs: ['/ip4/127.0.0.1/tcp/1'], slots: { total: 2, free: 2 }, capsHash: 'h1', ...over
})

describe('liveness transitions', () => {
  it('follows the documented state machine and nothing else', () => {
    const expectations: Array<[PeerState, LivenessEvent, PeerState | undefined]> = [
      ['alive', 'connection-lost', 'suspect'],
      ['alive', 'silent-suspect', 'suspect'],
      ['alive', 'heard-draining', 'draining'],
      ['suspect', 'heard-alive', 'alive'],
      ['suspect', 'unreachable', 'dead'],
      ['suspect', 'silent-dead', 'dead'],
      ['draining', 'left', 'dead'],
      ['draining', 'connection-lost', undefined],
      ['dead', 'heard-alive', 'alive'],
      ['dead', 'silent-dead', undefined],
      ['dead', 'unreachable', undefined]
    ]
    for (const [from, event, to] of expectations) expect(nextState(from, event), `${from} + ${event}`).toBe(to)
  })
})

describe('peer table', () => {
  it('marks a silent peer SUSPECT, then DEAD, and a fresh heartbeat brings it back', () => {
    const t = new PeerTable(timings)
    expect(t.observe('p', hb(), 0).transition).toMatchObject({ from: 'unknown', to: 'alive' })
    expect(t.tick(4000)).toEqual([])
    expect(t.tick(4001)).toMatchObject([{ to: 'suspect', reason: 'no heartbeat for 4.0 s' }])
    expect(t.tick(6000)).toEqual([])
    expect(t.tick(8001)).toMatchObject([{ from: 'suspect', to: 'dead' }])
    expect(t.observe('p', hb({ seq: 2 }), 9000).transition).toMatchObject({ from: 'dead', to: 'alive' })
  })

  it('ignores stale heartbeats: a delayed one can never resurrect a dead peer', () => {
    const t = new PeerTable(timings)
    t.observe('p', hb({ seq: 5 }), 0)
    t.tick(9000)
    expect(t.get('p')?.state).toBe('dead')
    expect(t.observe('p', hb({ seq: 4 }), 9100)).toEqual({ fresh: false, needCaps: false })
    expect(t.observe('p', hb({ seq: 5 }), 9100).fresh).toBe(false)
    expect(t.observe('p', hb({ incarnation: 99, seq: 50 }), 9100).fresh).toBe(false)
    expect(t.get('p')?.state).toBe('dead')
    // a restart is a new incarnation, whatever its sequence number
    expect(t.observe('p', hb({ incarnation: 200, seq: 0 }), 9200).transition).toMatchObject({ to: 'alive', reason: 'restarted' })
  })

  it('asks for capabilities when the hash is new, and stores them from an advert of the same beat', () => {
    const t = new PeerTable(timings)
    expect(t.observe('p', hb({ seq: 1, capsHash: 'h1' }), 0).needCaps).toBe(true)
    const caps = { probedAt: 1, durationMs: 1, host: { hostname: 'h', platform: 'linux', arch: 'x64', cpuModel: 'c', cpuVendor: 'v', cores: 1, physicalCores: 1, memoryBytes: 1 }, capabilities: {} }
    const stored = t.observe('p', { ...hb({ seq: 1, capsHash: 'h1' }), capabilities: caps }, 10)
    expect(stored.fresh).toBe(true)
    expect(t.get('p')?.capabilities).toEqual(caps)
    expect(t.observe('p', hb({ seq: 2, capsHash: 'h1' }), 20).needCaps).toBe(false)
  })

  it('connection loss makes a peer SUSPECT; a refused redial makes it DEAD, unless it reconnected', () => {
    const t = new PeerTable(timings)
    t.observe('p', hb(), 0)
    t.connection('p', true, 0)
    expect(t.connection('p', false, 10)).toMatchObject({ to: 'suspect', reason: 'connection lost' })
    expect(t.unreachable('p', 'ECONNREFUSED', 20)).toMatchObject({ to: 'dead', reason: 'unreachable: ECONNREFUSED' })
    const q = new PeerTable(timings)
    q.observe('q', hb(), 0)
    q.connection('q', false, 10)
    q.connection('q', true, 15)
    expect(q.unreachable('q', 'late failure', 20)).toBeUndefined()
  })

  it('a goodbye makes a peer DEAD at once and it is forgotten later', () => {
    const t = new PeerTable(timings)
    t.observe('p', hb(), 0)
    expect(t.observe('p', hb({ seq: 2, state: 'draining' }), 10).transition?.to).toBe('draining')
    expect(t.observe('p', hb({ seq: 3, state: 'left' }), 20).transition).toMatchObject({ to: 'dead', left: true })
    expect(t.forget(1000, 5000)).toEqual([])
    expect(t.forget(6000, 5000)).toEqual(['p'])
    expect(t.get('p')).toBeUndefined()
  })
})
