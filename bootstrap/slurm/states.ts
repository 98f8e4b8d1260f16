import type { EngineView } from '../../protocols/bridge/schema.ts'
import type { SacctRow, SqueueRow } from './parse.ts'

/**
 * Slurm's job states, as data: what each means for an array task (is it over,
 * did it fail, in words) and so for the allocation (PENDING, RUNNING, ENDED,
 * FAILED) and a detached shard's retry.
 */
interface SlurmState {
  /** sacct will not change it any more */
  final: boolean
  /** a final state that makes the allocation FAILED (CANCELLED does not: the bridge or a person ended it) */
  failed: boolean
  /** for an allocation's reason: "task 3 TIMEOUT (time limit)" */
  short: string
  /** for a detached shard's failure */
  cause: string
}

const waiting = (short: string): SlurmState => ({ final: false, failed: false, short, cause: `not finished (${short})` })
const failure = (short: string, cause: string): SlurmState => ({ final: true, failed: true, short, cause })

const STATES: Record<string, SlurmState> = {
  PENDING: waiting('pending'),
  CONFIGURING: waiting('its node is booting'),
  RUNNING: waiting('running'),
  COMPLETING: waiting('ending'),
  SIGNALING: waiting('being signalled'),
  STAGE_OUT: waiting('staging out'),
  SUSPENDED: waiting('suspended'),
  RESIZING: waiting('resizing'),
  REQUEUED: waiting('requeued'),
  REQUEUE_HOLD: waiting('requeued and held'),
  REQUEUE_FED: waiting('requeued by the federation'),
  SPECIAL_EXIT: waiting('held after a special exit'),
  RESV_DEL_HOLD: waiting('held: its reservation was deleted'),
  COMPLETED: { final: true, failed: false, short: 'completed', cause: 'completed' },
  CANCELLED: { final: true, failed: false, short: 'cancelled', cause: 'CANCELLED: cancelled with scancel' },
  REVOKED: { final: true, failed: false, short: 'revoked', cause: 'REVOKED: the federation ran it on another cluster' },
  FAILED: failure('non-zero exit', 'FAILED'),
  TIMEOUT: failure('time limit', 'TIMEOUT: the time limit killed it'),
  NODE_FAIL: failure('node failure', 'NODE_FAIL: its node failed'),
  OUT_OF_MEMORY: failure('memory limit', 'OUT_OF_MEMORY: it used more memory than --mem allows'),
  BOOT_FAIL: failure('node boot failure', 'BOOT_FAIL: its node failed to boot'),
  DEADLINE: failure('deadline', 'DEADLINE: it could not finish before its --deadline'),
  PREEMPTED: failure('preempted', 'PREEMPTED: a job of higher priority took its resources')
}

/** An unknown state (a newer Slurm) is taken as not over yet: resubmitting a task that still runs would run it twice. */
function stateOf (name: string): SlurmState {
  return STATES[name] ?? waiting(`${name}, a state this bridge does not know`)
}

/** squeue states in which the task's process runs (a COMPLETING node is draining: still a mesh node) */
const RUNS = new Set(['RUNNING', 'COMPLETING', 'SIGNALING', 'STAGE_OUT'])

/** Whether a detached shard's array task is over, whether it produced its shard, and why not. */
export function taskOutcome (row: SacctRow): { final: boolean, ok: boolean, cause: string } {
  const state = stateOf(row.state)
  if (row.state === 'COMPLETED') return { final: true, ok: row.exitCode === 0, cause: row.exitCode === 0 ? 'completed' : `exit code ${row.exitCode}` }
  if (row.state === 'FAILED') return { final: true, ok: false, cause: exitCause(row) }
  return { final: state.final, ok: false, cause: state.cause }
}

function exitCause (row: SacctRow): string {
  if (row.exitCode !== 0) return `exit code ${row.exitCode}`
  if (row.signal !== 0) return `killed by signal ${row.signal}`
  return 'FAILED'
}

function taskName (row: { jobId: string, taskId?: number }): string {
  return row.taskId != null ? `task ${row.taskId}` : `job ${row.jobId}`
}

/** "task 3 TIMEOUT (time limit); task 1 FAILED (exit code 3)", at most five named */
function describeFailures (rows: SacctRow[]): string {
  const named = rows.slice(0, 5).map(r => `${taskName(r)} ${r.state} (${r.state === 'FAILED' ? exitCause(r) : stateOf(r.state).short})`)
  return [...named, ...(rows.length > 5 ? [`and ${rows.length - 5} more`] : [])].join('; ')
}

/** "3 COMPLETED, 1 CANCELLED" */
function countStates (rows: Array<{ state: string }>): string {
  const counts = new Map<string, number>()
  for (const r of rows) counts.set(r.state, (counts.get(r.state) ?? 0) + 1)
  return [...counts].map(([state, n]) => `${n} ${state}`).join(', ')
}

/** squeue's distinct reasons for the tasks that wait: "Resources", "Priority, JobArrayTaskLimit" */
function waitReasons (rows: SqueueRow[]): string {
  return [...new Set(rows.map(r => r.reason).filter(r => r !== '' && r !== 'None' && r !== '(null)'))].join(', ')
}

/**
 * An attached allocation (one sbatch array of `requested` tasks) as the
 * bridge registry shows it, from squeue (what runs or waits now) and sacct
 * (how the others ended). sacct lags squeue by a few seconds: when the job
 * has left squeue but sacct has not recorded every task as over, the view
 * stays what it was (`last`, else what sacct still says) with the reason
 * "accounting catching up"; the caller decides how long to wait for it.
 */
export function allocationView (requested: number, squeue: SqueueRow[], sacct: SacctRow[], last?: EngineView): EngineView {
  const failed = sacct.filter(r => stateOf(r.state).failed)
  if (squeue.length > 0) {
    const running = squeue.filter(r => RUNS.has(r.state)).length
    const queued = squeue.filter(r => !RUNS.has(r.state))
    const why = waitReasons(queued)
    if (running === 0) return { state: 'PENDING', requested, running, reason: why !== '' ? why : countStates(queued) }
    const notes = [
      ...(queued.length > 0 ? [`${queued.length} pending${why !== '' ? ` (${why})` : ''}`] : []),
      ...(failed.length > 0 ? [describeFailures(failed)] : [])
    ]
    return { state: 'RUNNING', requested, running, ...(notes.length > 0 ? { reason: notes.join('; ') } : {}) }
  }
  const over = sacct.filter(r => stateOf(r.state).final)
  if (sacct.length >= requested && over.length === sacct.length) {
    if (failed.length > 0) return { state: 'FAILED', requested, running: 0, reason: describeFailures(failed) }
    return { state: 'ENDED', requested, running: 0, reason: countStates(over) }
  }
  const reason = 'accounting catching up'
  if (last != null && (last.state === 'PENDING' || last.state === 'RUNNING')) return { ...last, requested, reason }
  const running = sacct.filter(r => RUNS.has(r.state)).length
  return { state: running > 0 ? 'RUNNING' : 'PENDING', requested, running, reason }
}
