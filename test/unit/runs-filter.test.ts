import { describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { filterRuns, runStates } from '../../node/cli/runs-filter.ts'
import { runCli } from '../process/harness.ts'

const HOUR = 3600_000
const NOW = 100 * HOUR

function run (name: string, state: CampaignStatus['state'], hoursAgo: number): CampaignStatus {
  return {
    id: `c-${name}`, name, state, priority: 'NORMAL', coordinator: 'p', createdAt: NOW - hoursAgo * HOUR, startedAt: null, endedAt: null,
    shards: { total: 1, done: 0, failed: 0, running: 0, leased: 0, pending: 1 }, progress: 0, rate: 0, etaMs: null, waiting: null,
    workers: [], deadLetters: [], runDir: '/tmp/r'
  }
}

const LIST = [run('option-pricing-call', 'SUCCEEDED', 30), run('option-pricing-put', 'FAILED', 2), run('rlc-step-sweep', 'RUNNING', 1)]
const names = (list: CampaignStatus[]): string[] => list.map(s => s.name)

describe('zp runs filters', () => {
  it('narrows by part of the name (any case, * for anything), by state and by age, all at once', () => {
    expect(names(filterRuns(LIST, {}, NOW))).toEqual(names(LIST))
    expect(names(filterRuns(LIST, { name: 'PRICING' }, NOW))).toEqual(['option-pricing-call', 'option-pricing-put'])
    expect(names(filterRuns(LIST, { name: 'option*put' }, NOW))).toEqual(['option-pricing-put'])
    expect(names(filterRuns(LIST, { name: 'step.sweep' }, NOW))).toEqual([])
    expect(names(filterRuns(LIST, { states: ['FAILED', 'RUNNING'] }, NOW))).toEqual(['option-pricing-put', 'rlc-step-sweep'])
    expect(names(filterRuns(LIST, { sinceMs: 24 * HOUR }, NOW))).toEqual(['option-pricing-put', 'rlc-step-sweep'])
    expect(names(filterRuns(LIST, { name: 'pricing', sinceMs: 24 * HOUR, states: ['FAILED'] }, NOW))).toEqual(['option-pricing-put'])
  })

  it('takes states in any case and refuses one that does not exist, naming those that do', async () => {
    expect(runStates(['succeeded', 'Failed'])).toEqual(['SUCCEEDED', 'FAILED'])
    expect(() => runStates(['DONE'])).toThrow('--state DONE: no such state; a campaign is QUEUED, RUNNING, STOPPED, SUCCEEDED, FAILED, CANCELLED')
    const r = await runCli('zp', ['runs', '--state', 'done', '--data-dir', '/nonexistent'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--state done: no such state/)
    const since = await runCli('zp', ['runs', '--since', 'soon', '--data-dir', '/nonexistent'])
    expect(since.code).toBe(2)
  })
})
