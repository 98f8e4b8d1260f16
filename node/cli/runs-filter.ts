import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { CAMPAIGN_STATES } from '../../protocols/campaign/status.ts'
import { UsageError } from './errors.ts'

/** `zp runs --name … --state … --since …`: which of a node's campaigns to list. */
export interface RunsFilter {
  /** part of the name, any case; `*` matches anything */
  name?: string
  states?: readonly string[]
  /** created within this long before `now` */
  sinceMs?: number
}

/** `--state` values, checked (any case): a typo names the states there are. */
export function runStates (given: readonly string[]): string[] {
  return given.map(s => {
    const up = s.toUpperCase()
    if (!(CAMPAIGN_STATES as readonly string[]).includes(up)) throw new UsageError(`--state ${s}: no such state; a campaign is ${CAMPAIGN_STATES.join(', ')}`)
    return up
  })
}

export function filterRuns (list: readonly CampaignStatus[], f: RunsFilter, now = Date.now()): CampaignStatus[] {
  const pattern = f.name == null
    ? undefined
    : new RegExp(f.name.split('*').map(part => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*'), 'i')
  return list.filter(s =>
    (pattern == null || pattern.test(s.name)) &&
    (f.states == null || f.states.length === 0 || f.states.includes(s.state)) &&
    (f.sinceMs == null || s.createdAt >= now - f.sinceMs))
}
