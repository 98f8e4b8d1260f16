import { describe, expect, it } from 'vitest'
import { CampaignRun, failureOutcome } from '../../actors/coordinator/campaign.ts'
import { ShardPlan } from '../../actors/coordinator/plan.ts'
import { formatRanges, parseRanges, RangeSet } from '../../actors/coordinator/ranges.ts'
import { nextCampaign, nextShard, type ShardEvent, type ShardState } from '../../actors/coordinator/states.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'

function spec (over: Partial<CampaignSpec> = {}): CampaignSpec {
  return {
    name: 't',
    priority: 'NORMAL',
    shards: { kind: 'iterations', total: 10, perShard: 1, seed: 1 },
    workload: { kind: 'module', module: { hash: 'a'.repeat(64), size: 1, name: 'm.mjs' } },
    params: {},
    retry: { maxAttempts: 3, initialDelayMs: 100, backoffFactor: 2, maxDelayMs: 10_000 },
    requires: { capabilities: [], minMemoryBytes: 0 },
    shardTimeoutMs: 60_000,
    source: {},
    ...over
  } as CampaignSpec
}

function run (total = 10, over: Partial<CampaignSpec> = {}): CampaignRun {
  const s = spec({ shards: { kind: 'iterations', total, perShard: 1, seed: 1 }, ...over })
  return new CampaignRun({ id: 'c-test000001', spec: s, plan: new ShardPlan(s.shards), createdAt: 0 })
}

describe('shard transition table', () => {
  const cases: Array<[ShardState, ShardEvent, ShardState | undefined]> = [
    ['pending', 'lease', 'leased'],
    ['leased', 'start', 'running'],
    ['running', 'complete', 'done'],
    ['leased', 'complete', 'done'],
    ['running', 'fail-retry', 'retrying'],
    ['running', 'fail-final', 'failed'],
    ['retrying', 'lease', 'leased'],
    ['running', 'requeue', 'pending'],
    // a result from a worker that held the shard before it was re-leased counts
    ['pending', 'complete', 'done'],
    ['failed', 'complete', 'done'],
    // nothing moves a done shard, and a shard not leased cannot fail or start
    ['done', 'complete', undefined],
    ['done', 'lease', undefined],
    ['pending', 'fail-retry', undefined],
    ['pending', 'start', undefined],
    ['retrying', 'requeue', undefined],
    ['failed', 'lease', undefined]
  ]
  it.each(cases)('%s --%s--> %s', (from, event, to) => {
    expect(nextShard(from, event)).toBe(to)
  })
})

describe('campaign transition table', () => {
  it('runs, ends, stops and resumes only along its rows', () => {
    expect(nextCampaign('QUEUED', 'lease')).toBe('RUNNING')
    expect(nextCampaign('RUNNING', 'succeeded')).toBe('SUCCEEDED')
    expect(nextCampaign('RUNNING', 'failed')).toBe('FAILED')
    expect(nextCampaign('RUNNING', 'stop')).toBe('STOPPED')
    expect(nextCampaign('STOPPED', 'resume')).toBe('RUNNING')
    expect(nextCampaign('STOPPED', 'cancel')).toBe('CANCELLED')
    // a cancelled campaign stays cancelled when its last shard arrives late
    expect(nextCampaign('CANCELLED', 'succeeded')).toBeUndefined()
    expect(nextCampaign('SUCCEEDED', 'cancel')).toBeUndefined()
    expect(nextCampaign('RUNNING', 'resume')).toBeUndefined()
  })
})

describe('a campaign run', () => {
  it('leases in order, marks running on progress, and succeeds when every shard is done', () => {
    const r = run(3)
    expect(r.state).toBe('QUEUED')
    const leases = r.grantNext(5, 'w1', 'one', 10)
    expect(leases.map(l => [l.index, l.epoch, l.attempt])).toEqual([[0, 1, 1], [1, 2, 1], [2, 3, 1]])
    expect(r.state).toBe('RUNNING')
    r.progress(1, 2, 'w1', 0.5, 11)
    expect([r.stateOf(0), r.stateOf(1)]).toEqual(['leased', 'running'])
    for (const i of [2, 0, 1]) r.complete(i, 'w1', 20, { durationMs: 5 })
    expect(r.state).toBe('SUCCEEDED')
    expect(r.workers()).toEqual([{ peer: 'w1', name: 'one', done: 3, failed: 0, busyMs: 15 }])
  })

  it('ignores a failure from a lease that is no longer in force, and a duplicate result', () => {
    const r = run(2)
    const [l0] = r.grantNext(1, 'w1', 'one', 0)
    r.requeue(l0!.index)
    expect(r.fail(0, l0!.epoch, 'w1', 'boom', true, 1)).toBe('stale')
    const [again] = r.grantNext(1, 'w2', 'two', 2)
    expect(again!.index).toBe(0)
    expect(r.complete(0, 'w1', 3, { durationMs: 1 })).toMatchObject({ duplicate: false, supersedes: { worker: 'w2' } })
    expect(r.complete(0, 'w2', 4, { durationMs: 1 })).toEqual({ duplicate: true })
    expect(r.stateOf(0)).toBe('done')
  })

  it('retries with backoff, then dead-letters after the last attempt; the campaign fails', () => {
    const r = run(1, { retry: { maxAttempts: 2, initialDelayMs: 100, backoffFactor: 2, maxDelayMs: 1000 } })
    const [a] = r.grantNext(1, 'w1', 'one', 0)
    expect(r.fail(0, a!.epoch, 'w1', 'boom', true, 10)).toBe('retry')
    expect(r.stateOf(0)).toBe('retrying')
    expect(r.dueRetries(50, 10)).toEqual([])
    expect(r.dueRetries(200, 10)).toEqual([{ index: 0, failedOn: ['w1'] }])
    // a retry is leased only when named, and only once due
    expect(r.grantNext(1, 'w2', 'two', 50, [0])).toEqual([])
    const [b] = r.grantNext(0, 'w2', 'two', 200, [0])
    expect(b).toMatchObject({ index: 0, attempt: 2 })
    expect(r.fail(0, b!.epoch, 'w2', 'boom again', true, 210)).toBe('dead')
    expect(r.state).toBe('FAILED')
    expect(r.deadLetters()).toEqual([{ index: 0, attempts: 2, error: 'boom again' }])
    expect(r.failedOn(0)).toEqual(['w1', 'w2'])
  })

  it('a non-retryable failure is final at once', () => {
    expect(failureOutcome({ maxAttempts: 5 }, 1, false)).toBe('dead')
    expect(failureOutcome({ maxAttempts: 5 }, 4, true)).toBe('retry')
    expect(failureOutcome({ maxAttempts: 5 }, 5, true)).toBe('dead')
  })

  it('a stopped campaign leases nothing until it resumes; a cancelled one keeps its done shards', () => {
    const r = run(4)
    r.grantNext(1, 'w1', 'one', 0)
    r.complete(0, 'w1', 1, { durationMs: 1 })
    expect(r.stop()).toBe(true)
    expect(r.grantNext(4, 'w1', 'one', 2)).toEqual([])
    expect(r.freshCount(10)).toBe(0)
    expect(r.resume(3)).toBe(true)
    expect(r.grantNext(4, 'w1', 'one', 4).map(l => l.index)).toEqual([1, 2, 3])
    expect(r.cancel(5)!.map(l => l.index)).toEqual([1, 2, 3])
    r.complete(1, 'w1', 6, { durationMs: 1 })
    expect(r.state).toBe('CANCELLED')
    expect(r.doneCount).toBe(2)
  })

  it('a restored run skips done shards a range at a time and grants epochs above the reservation', () => {
    const r = run(1_000_000_000)
    for (let i = 0; i < 500_000; i++) r.restoreDone(i)
    r.restoreDone(500_001)
    r.restore({ state: 'RUNNING', failures: [], dead: [], epoch: 70_000 }, 0)
    const leases = r.grantNext(3, 'w1', 'one', 1)
    expect(leases.map(l => [l.index, l.epoch])).toEqual([[500_000, 70_001], [500_002, 70_002], [500_003, 70_003]])
    expect(r.doneCount).toBe(500_001)
  })
})

describe('range set', () => {
  it('keeps indexes as merged ranges, whatever the order they arrive in', () => {
    const s = new RangeSet()
    for (const i of [5, 3, 4, 0, 1, 9, 2, 8]) expect(s.add(i)).toBe(true)
    expect(s.add(4)).toBe(false)
    expect([...s.entries()]).toEqual([[0, 6], [8, 10]])
    expect(s.count).toBe(8)
    expect([s.has(5), s.has(6), s.has(7), s.has(9), s.has(10)]).toEqual([true, false, false, true, false])
    expect(s.nextAbsent(2)).toBe(6)
    expect(s.nextAbsent(7)).toBe(7)
    s.add(6)
    s.add(7)
    expect([...s.entries()]).toEqual([[0, 10]])
  })

  it('a million done shards in order are one range', () => {
    const s = new RangeSet()
    for (let i = 0; i < 1_000_000; i++) s.add(i)
    expect(s.ranges).toBe(1)
  })

  it('formats indexes compactly for the audit, and reads them back', () => {
    expect(formatRanges([3, 0, 1, 2, 7, 9, 10])).toBe('0-3,7,9-10')
    expect(formatRanges([])).toBe('')
    expect(parseRanges('0-3,7,9-10')).toEqual([0, 1, 2, 3, 7, 9, 10])
    expect(parseRanges('')).toEqual([])
    expect(parseRanges('x-1,2')).toEqual([2])
  })
})
