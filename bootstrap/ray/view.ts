import type { EngineView } from '../../protocols/bridge/schema.ts'
import type { RayJobInfo } from './client.ts'

/** what of Ray's failure message goes into an allocation's reason (the registry keeps at most 2000 characters) */
const REASON_CHARS = 900

/**
 * The launcher's status lines in the job's logs: its tasks print
 * "zp-ray: node I started …" and "zp-ray: node I exited with code C"
 * (through Ray's worker-to-driver log streaming), the driver "zp-ray: node
 * I lost: …" when a task's worker died.
 */
const NODE_LINE = /zp-ray: node (\d+) (started|exited|lost)\b/

export interface NodeProgress {
  /** nodes whose task started them */
  started: number
  /** of those and the rest, nodes that have ended (exited or lost with their worker) */
  ended: number
  /** started and not ended */
  running: number
}

/** Counts the nodes from the launcher's lines (any prefix: Ray puts "(run_node pid=…)" before a task's lines). */
export function nodeProgress (logs: string): NodeProgress {
  const started = new Set<string>()
  const ended = new Set<string>()
  for (const line of logs.split('\n')) {
    const m = NODE_LINE.exec(line)
    if (m == null) continue
    if (m[2] === 'started') started.add(m[1]!)
    else ended.add(m[1]!)
  }
  const running = [...started].filter(i => !ended.has(i)).length
  return { started: started.size, ended: ended.size, running }
}

/**
 * What `zp bridge list` shows of a Ray allocation: the job's status
 * (PENDING and RUNNING as they are, SUCCEEDED and STOPPED as ENDED, FAILED
 * with Ray's message), and while it runs, how many of its nodes run.
 */
export function rayView (info: RayJobInfo, requested: number, progress?: NodeProgress): EngineView {
  switch (info.status) {
    case 'PENDING':
      return { state: 'PENDING', requested, running: 0, reason: `the Ray job is pending: ${info.message ?? 'Ray has not started its driver yet'}` }
    case 'RUNNING': {
      const p = progress ?? { started: 0, ended: 0, running: 0 }
      const waiting = Math.max(0, requested - p.started)
      const notes = [
        ...(waiting > 0 ? [`${waiting} node${waiting === 1 ? '' : 's'} waiting for Ray to schedule ${waiting === 1 ? 'its task' : 'their tasks'} (resources)`] : []),
        ...(p.ended > 0 ? [`${p.ended} node${p.ended === 1 ? '' : 's'} ended (see the job's logs)`] : [])
      ]
      return { state: 'RUNNING', requested, running: p.running, ...(notes.length > 0 ? { reason: notes.join('; ') } : {}) }
    }
    case 'SUCCEEDED':
      return { state: 'ENDED', requested, running: 0, reason: 'the Ray job ended: every node left (idle)' }
    case 'STOPPED':
      return { state: 'ENDED', requested, running: 0, reason: 'the Ray job was stopped' }
    case 'FAILED':
      return { state: 'FAILED', requested, running: 0, reason: failureReason(info) }
  }
}

/**
 * Ray's message for a failed job is its first line ("Job entrypoint command
 * failed with exit code 1, last available logs …:") and the log's tail: the
 * launcher's lines about failed nodes say why; otherwise the tail does.
 */
function failureReason (info: RayJobInfo): string {
  const head = `the Ray job failed${info.driverExitCode != null ? ` (driver exit code ${info.driverExitCode})` : ''}`
  const message = (info.message ?? '').trim()
  if (message === '') return head
  const lines = message.split('\n').map(l => l.trim()).filter(l => l !== '')
  const nodes = lines.filter(l => /zp-ray: node \d+ (exited with code (?!0\b)|lost)/.test(l))
  const said = nodes.length > 0 ? nodes.slice(-3).join(' | ') : lines.length > 1 ? lines.slice(-4).join(' | ') : lines[0]!
  return `${head}: ${said.length > REASON_CHARS ? '…' + said.slice(-REASON_CHARS) : said}`
}
