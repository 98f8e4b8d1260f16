/**
 * Peer liveness, as data. Every change of a peer's state goes through
 * `nextState`; nothing else assigns a state.
 *
 *   ALIVE ──silence>suspectAfter / connection lost──▶ SUSPECT ──silence>deadAfter / redial failed──▶ DEAD
 *     ▲                                                  │
 *     └──────────────── heartbeat or hello ──────────────┘   (DEAD too, on a newer heartbeat: restarted)
 *   any ──draining heartbeat──▶ DRAINING ──left / silence / unreachable──▶ DEAD
 */
export type PeerState = 'alive' | 'suspect' | 'dead' | 'draining'

export type LivenessEvent =
  /** a fresh heartbeat or hello saying the peer runs normally */
  | 'heard-alive'
  /** a fresh heartbeat saying the peer is draining */
  | 'heard-draining'
  /** the peer said goodbye (clean stop) */
  | 'left'
  /** our last connection to it closed */
  | 'connection-lost'
  /** a dial to it failed after the connection was lost */
  | 'unreachable'
  /** no heartbeat for longer than suspectAfterMs */
  | 'silent-suspect'
  /** no heartbeat for longer than deadAfterMs */
  | 'silent-dead'

const TABLE: Record<PeerState, Partial<Record<LivenessEvent, PeerState>>> = {
  alive: {
    'heard-draining': 'draining',
    left: 'dead',
    'connection-lost': 'suspect',
    unreachable: 'dead',
    'silent-suspect': 'suspect',
    'silent-dead': 'dead'
  },
  suspect: {
    'heard-alive': 'alive',
    'heard-draining': 'draining',
    left: 'dead',
    unreachable: 'dead',
    'silent-dead': 'dead'
  },
  draining: {
    'heard-alive': 'alive',
    left: 'dead',
    unreachable: 'dead',
    'silent-dead': 'dead'
  },
  dead: {
    'heard-alive': 'alive',
    'heard-draining': 'draining'
  }
}

/** The state after `event`, or undefined when the event does not change it. */
export function nextState (state: PeerState, event: LivenessEvent): PeerState | undefined {
  return TABLE[state][event]
}

export interface LivenessTimings {
  /** how often a node publishes its heartbeat */
  heartbeatMs: number
  /** silence after which a peer is SUSPECT */
  suspectAfterMs: number
  /** silence after which a peer is DEAD */
  deadAfterMs: number
  /** how long the confirming redial after a lost connection may take */
  redialTimeoutMs: number
}

/**
 * Defaults, and why (see the README's liveness section): a heartbeat a second
 * costs nothing on a lab mesh; 4 s of silence (four missed beats) is beyond the
 * event-loop stalls a loaded 2-core box shows, and 8 s confirms it. A killed
 * process closes its TCP connections at once, so that path is much faster:
 * SUSPECT immediately, DEAD as soon as a redial is refused.
 */
export const DEFAULT_TIMINGS: LivenessTimings = {
  heartbeatMs: 1000,
  suspectAfterMs: 4000,
  deadAfterMs: 8000,
  redialTimeoutMs: 2000
}
