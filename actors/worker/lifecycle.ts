/**
 * The worker's lifecycle, as data (Temporal's worker states, less the ones it
 * has no use for: it is ready once created). Every change goes through
 * `nextLifecycle`; nothing else assigns a state.
 *
 *   RUNNING ──drain──▶ DRAINING ──stop──▶ STOPPED
 *      └─────────────────stop────────────────▲
 *
 * Draining is not stopping: no new leases are taken, shards not started go
 * back at once, and running ones finish or are handed back at the deadline.
 */
export type WorkerState = 'running' | 'draining' | 'stopped'

export type WorkerEvent =
  /** the node drains: take no new work */
  | 'drain'
  /** the actor stops (the node stops, or the actor restarts): abort everything */
  | 'stop'

const TABLE: Record<WorkerState, Partial<Record<WorkerEvent, WorkerState>>> = {
  running: { drain: 'draining', stop: 'stopped' },
  draining: { stop: 'stopped' },
  stopped: {}
}

/** The state after `event`, or undefined when the event does not change it. */
export function nextLifecycle (state: WorkerState, event: WorkerEvent): WorkerState | undefined {
  return TABLE[state][event]
}

/** The worker's answer to `status`: what it holds now, and how many leases it has taken in all. */
export interface WorkerStatus {
  running: number
  queued: number
  /** shards started whose result has not been acknowledged yet (the running ones included) */
  delivering: number
  /** leases accepted since the actor started: a change between two looks is work that came and went */
  taken: number
  draining: boolean
}
