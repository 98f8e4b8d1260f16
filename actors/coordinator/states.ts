import type { CampaignState } from '../../protocols/campaign/status.ts'

/**
 * A shard's and a campaign's life, as data: every change goes through
 * `nextShard` / `nextCampaign`, and an event a state has no row for changes
 * nothing (a late or duplicate message is recognised by that, not by ad-hoc
 * checks). Pure, no time, no I/O, like actors/membership/liveness.ts.
 *
 * Shards:
 *
 *   pending ──lease──▶ leased ──start──▶ running ──complete──▶ done
 *      ▲                 │                 │
 *      └────requeue──────┴─────────────────┤   (worker lost or silent, handed back, lease not delivered)
 *   retrying ◀──fail-retry─────────────────┤   (the shard itself failed; backoff before its next lease)
 *   failed   ◀──fail-final─────────────────┘   (attempts used up, or not retryable: the dead letter)
 *
 *   A result from a worker that held the shard before it was re-leased still
 *   counts: `complete` is taken from pending, retrying and failed too.
 */
export type ShardState = 'pending' | 'leased' | 'running' | 'retrying' | 'done' | 'failed'

export type ShardEvent =
  /** handed to a worker (a retrying shard only once its backoff has passed) */
  | 'lease'
  /** the worker reports it has started */
  | 'start'
  /** its result is stored */
  | 'complete'
  /** it failed and has attempts left */
  | 'fail-retry'
  /** it failed for good */
  | 'fail-final'
  /** its lease ended without an attempt being counted */
  | 'requeue'

const SHARD: Record<ShardState, Partial<Record<ShardEvent, ShardState>>> = {
  pending: { lease: 'leased', complete: 'done' },
  leased: { start: 'running', complete: 'done', 'fail-retry': 'retrying', 'fail-final': 'failed', requeue: 'pending' },
  running: { complete: 'done', 'fail-retry': 'retrying', 'fail-final': 'failed', requeue: 'pending' },
  retrying: { lease: 'leased', complete: 'done' },
  failed: { complete: 'done' },
  done: {}
}

/** The shard's state after `event`, or undefined when the event does not apply to it. */
export function nextShard (state: ShardState, event: ShardEvent): ShardState | undefined {
  return SHARD[state][event]
}

/**
 * Campaigns:
 *
 *   QUEUED ──lease──▶ RUNNING ──settled──▶ SUCCEEDED (every shard done) | FAILED (some failed for good)
 *   QUEUED, RUNNING ──stop──▶ STOPPED ──resume──▶ RUNNING     (its coordinator's node stopped it: --no-resume)
 *   QUEUED, RUNNING, STOPPED ──cancel──▶ CANCELLED
 */
export type { CampaignState } from '../../protocols/campaign/status.ts'

export type CampaignEvent = 'lease' | 'succeeded' | 'failed' | 'cancel' | 'stop' | 'resume'

const CAMPAIGN: Record<CampaignState, Partial<Record<CampaignEvent, CampaignState>>> = {
  QUEUED: { lease: 'RUNNING', succeeded: 'SUCCEEDED', failed: 'FAILED', cancel: 'CANCELLED', stop: 'STOPPED' },
  RUNNING: { succeeded: 'SUCCEEDED', failed: 'FAILED', cancel: 'CANCELLED', stop: 'STOPPED' },
  STOPPED: { resume: 'RUNNING', cancel: 'CANCELLED' },
  SUCCEEDED: {},
  FAILED: {},
  CANCELLED: {}
}

export function nextCampaign (state: CampaignState, event: CampaignEvent): CampaignState | undefined {
  return CAMPAIGN[state][event]
}

export const FINAL_STATES: ReadonlySet<CampaignState> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED'])

export function isFinal (state: CampaignState): boolean {
  return FINAL_STATES.has(state)
}
