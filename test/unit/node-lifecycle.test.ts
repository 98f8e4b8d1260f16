import { describe, expect, it } from 'vitest'
import { pino, type Logger } from 'pino'
import { NodeLifecycle, nextNodeState, type NodeEvent, type NodeState } from '../../node/lifecycle.ts'

function captured (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  return { log: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }), lines }
}

describe('node lifecycle', () => {
  it('follows the documented state machine and nothing else', () => {
    const table: Record<NodeState, Record<NodeEvent, NodeState | undefined>> = {
      starting: { started: 'running', drain: undefined, stop: 'stopping', failed: 'stopping', stopped: undefined },
      running: { started: undefined, drain: 'draining', stop: 'stopping', failed: 'stopping', stopped: undefined },
      draining: { started: undefined, drain: undefined, stop: 'stopping', failed: 'stopping', stopped: undefined },
      stopping: { started: undefined, drain: undefined, stop: undefined, failed: undefined, stopped: 'stopped' },
      stopped: { started: undefined, drain: undefined, stop: undefined, failed: undefined, stopped: undefined }
    }
    for (const [from, row] of Object.entries(table)) {
      for (const [event, to] of Object.entries(row)) {
        expect(nextNodeState(from as NodeState, event as NodeEvent), `${from} + ${event}`).toBe(to)
      }
    }
  })

  it('logs each change with the state left, the state entered and the event; the caller\'s fields go along', () => {
    const { log, lines } = captured()
    const node = new NodeLifecycle(log)
    expect(node.state).toBe('starting')
    expect(node.become('started', { peerId: 'p1' })).toBe('starting')
    expect(node.become('drain', { reason: 'received SIGTERM' })).toBe('running')
    expect(node.become('stop')).toBe('draining')
    expect(node.become('stopped')).toBe('stopping')
    expect(node.state).toBe('stopped')
    expect(lines).toMatchObject([
      { level: 30, from: 'starting', to: 'running', event: 'started', peerId: 'p1', msg: 'node started' },
      { from: 'running', to: 'draining', event: 'drain', reason: 'received SIGTERM', msg: 'draining: taking no new work' },
      { from: 'draining', to: 'stopping', event: 'stop', msg: 'node stopping' },
      { from: 'stopping', to: 'stopped', event: 'stopped', msg: 'node stopped' }
    ])
  })

  it('draining twice, or draining a node that is not running, changes nothing and logs nothing', () => {
    const { log, lines } = captured()
    const node = new NodeLifecycle(log)
    expect(node.become('drain')).toBeUndefined()
    node.become('started')
    node.become('drain')
    expect(node.become('drain')).toBeUndefined()
    expect(node.become('started')).toBeUndefined()
    expect(node.state).toBe('draining')
    expect(lines.map(l => l.event)).toEqual(['started', 'drain'])
  })

  it('a start that fails, before or after RUNNING, goes down through STOPPING; the teardown says which', () => {
    for (const reached of [[], ['started'], ['started', 'drain']] as NodeEvent[][]) {
      const { log, lines } = captured()
      const node = new NodeLifecycle(log)
      for (const event of reached) node.become(event)
      const left = node.state
      expect(node.become('failed')).toBe(left)
      // a stop asked for meanwhile is the same teardown: nothing more
      expect(node.become('stop')).toBeUndefined()
      expect(node.become('stopped')).toBe('stopping')
      expect(lines.slice(-2)).toMatchObject([
        { from: left, to: 'stopping', event: 'failed', msg: 'node start failed; stopping what it started' },
        { to: 'stopped', event: 'stopped' }
      ])
    }
  })
})
