import type { Logger } from 'pino'

/**
 * The node's own lifecycle, as data. Every change goes through
 * `NodeLifecycle.become`; nothing else assigns a state.
 *
 *   STARTING ──started──▶ RUNNING ──drain──▶ DRAINING
 *      │                    │                   │
 *      └──stop / failed─────┴───stop / failed───┴──▶ STOPPING ──stopped──▶ STOPPED
 *
 * `failed` is a start that threw part-way (even after RUNNING: writing
 * node.json or reading the known peers): what was started is stopped again.
 * Draining twice, or stopping twice, changes nothing.
 */
export type NodeState = 'starting' | 'running' | 'draining' | 'stopping' | 'stopped'

export type NodeEvent =
  /** listening, the API up: the node takes work */
  | 'started'
  /** asked to drain (a signal, `zp-node drain`): take no new work, finish or hand back what runs */
  | 'drain'
  /** asked to stop, or a drain ended: tear everything down */
  | 'stop'
  /** the start threw: tear down what it started */
  | 'failed'
  /** the teardown finished */
  | 'stopped'

const TABLE: Record<NodeState, Partial<Record<NodeEvent, NodeState>>> = {
  starting: { started: 'running', stop: 'stopping', failed: 'stopping' },
  running: { drain: 'draining', stop: 'stopping', failed: 'stopping' },
  draining: { stop: 'stopping', failed: 'stopping' },
  stopping: { stopped: 'stopped' },
  stopped: {}
}

const SAYS: Record<NodeEvent, string> = {
  started: 'node started',
  drain: 'draining: taking no new work',
  stop: 'node stopping',
  failed: 'node start failed; stopping what it started',
  stopped: 'node stopped'
}

/** The state after `event`, or undefined when the event does not change it. */
export function nextNodeState (state: NodeState, event: NodeEvent): NodeState | undefined {
  return TABLE[state][event]
}

/** The node's current state, changed only through `become`, each change logged. */
export class NodeLifecycle {
  readonly #log: Logger
  #state: NodeState = 'starting'

  constructor (log: Logger) {
    this.#log = log
  }

  get state (): NodeState {
    return this.#state
  }

  /**
   * Applies `event`; `fields` go into the log line. Returns the state left,
   * or undefined (nothing logged) when the event does not apply now.
   */
  become (event: NodeEvent, fields: Record<string, unknown> = {}): NodeState | undefined {
    const from = this.#state
    const to = nextNodeState(from, event)
    if (to == null) return undefined
    this.#state = to
    this.#log.info({ ...fields, from, to, event }, SAYS[event])
    return from
  }
}
