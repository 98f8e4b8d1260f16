import { describe, expect, it } from 'vitest'
import { refuseLease, type LeaseCheck } from '../../actors/worker/leases.ts'
import { nextLifecycle, type WorkerEvent, type WorkerState } from '../../actors/worker/lifecycle.ts'
import { LeaseReplySchema } from '../../protocols/campaign/messages.ts'

describe('worker lifecycle', () => {
  it('follows the documented state machine and nothing else', () => {
    const expectations: Array<[WorkerState, WorkerEvent, WorkerState | undefined]> = [
      ['running', 'drain', 'draining'],
      ['running', 'stop', 'stopped'],
      ['draining', 'drain', undefined],
      ['draining', 'stop', 'stopped'],
      ['stopped', 'drain', undefined],
      ['stopped', 'stop', undefined]
    ]
    for (const [from, event, to] of expectations) expect(nextLifecycle(from, event), `${from} + ${event}`).toBe(to)
  })
})

describe('taking a lease', () => {
  const check = (over: Partial<LeaseCheck> = {}): LeaseCheck => ({ state: 'running', running: 1, queued: 0, capacity: 4, duplicate: false, ...over })

  it('takes it while running with room for a shard it does not hold', () => {
    expect(refuseLease(check())).toBeUndefined()
  })

  it('refuses with a code the coordinator can switch on, and the reason for people', () => {
    expect(refuseLease(check({ supersededBy: { coordinator: 'r1', term: 2 } }))).toEqual({ code: 'superseded', reason: "superseded: this campaign's coordinator is r1 since term 2" })
    expect(refuseLease(check({ state: 'draining' }))).toEqual({ code: 'draining', reason: 'draining' })
    expect(refuseLease(check({ running: 2, queued: 2 }))).toEqual({ code: 'busy', reason: 'busy: 2 running, 2 queued' })
    expect(refuseLease(check({ duplicate: true }))).toEqual({ code: 'duplicate', reason: 'already running this shard' })
  })

  it('names the first reason that applies: superseded, then draining, then busy, then a duplicate', () => {
    expect(refuseLease(check({ supersededBy: { coordinator: 'r1', term: 2 }, state: 'draining', running: 4, duplicate: true }))?.code).toBe('superseded')
    expect(refuseLease(check({ state: 'draining', running: 4, duplicate: true }))?.code).toBe('draining')
    expect(refuseLease(check({ running: 4, duplicate: true }))?.code).toBe('busy')
  })

  it('a reply without codes is refused on the wire', () => {
    expect(LeaseReplySchema.safeParse({ accepted: [], refused: [{ epoch: 1, reason: 'busy: 2 running, 2 queued' }], free: 0 }).success).toBe(false)
    expect(LeaseReplySchema.parse({ accepted: [], refused: [{ epoch: 1, code: 'busy', reason: 'busy' }], free: 0 }).refused[0]!.code).toBe('busy')
  })
})
