import { describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { reportFileName } from '../../node/cli/report.ts'
import { renderWatch, watchLine } from '../../node/cli/watch.ts'

const STATUS: CampaignStatus = {
  id: 'c-1', name: 'sweep', state: 'RUNNING', priority: 'NORMAL', coordinator: '12D3KooWcoord', coordinatorName: 'a',
  createdAt: 0, startedAt: 0, endedAt: null,
  shards: { total: 10, done: 5, failed: 1, running: 2, leased: 1, pending: 1 },
  progress: 0.55, rate: 2.5, etaMs: 2000, waiting: null,
  workers: [{ peer: 'p1', name: 'b', done: 2, failed: 1, busyMs: 10 }, { peer: 'p2', name: 'a', done: 3, failed: 0, busyMs: 10 }],
  deadLetters: [], runDir: '/r', term: 2, replicas: ['12D3KooWrepl'], replicaNames: ['c']
}

describe('zp status --watch view', () => {
  it('draws a bar per shard state, rate and ETA, workers busiest first, coordinator, term and replicas', () => {
    const lines = renderWatch(STATUS)
    expect(lines[0]).toBe('sweep (c-1)  RUNNING  55.0%')
    expect(lines[1]).toBe(`  done     ${'█'.repeat(15)}${'░'.repeat(15)}  5/10`)
    expect(lines.find(l => l.startsWith('  failed'))).toBe(`  failed   ${'█'.repeat(3)}${'░'.repeat(27)}  1/10`)
    expect(lines).toContain('  workers  a 3, b 2 (1 failed)')
    expect(lines).toContain('  coord    a, term 2, replicas c')
    expect(lines.find(l => l.startsWith('  rate'))).toMatch(/^ {2}rate {5}2\.5 shards\/s {3}ETA 2\.0 s/)
  })

  it('writes one plain line per change for logs', () => {
    expect(watchLine(STATUS, Date.UTC(2026, 0, 1))).toBe('2026-01-01T00:00:00.000Z c-1 RUNNING 55.0% done 5/10 running 2 leased 1 pending 1 failed 1 | 2.5 shards/s | ETA 2.0 s | 2 workers')
  })
})

describe('zp report file name', () => {
  it('is the campaign name made safe for a file name, and its id', () => {
    expect(reportFileName({ name: 'rlc-step-sweep', id: 'c-1' })).toBe('rlc-step-sweep-c-1.html')
    expect(reportFileName({ name: '../../etc/<x> y', id: 'c-2' })).toBe('etc-x-y-c-2.html')
    expect(reportFileName({ name: '///', id: 'c-3' })).toBe('campaign-c-3.html')
  })
})
