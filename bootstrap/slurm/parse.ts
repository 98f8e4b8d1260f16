/**
 * What squeue and sacct print, as rows. Pure: the client runs the commands,
 * these read their output (tested with the real commands' text).
 */

/** One line of `squeue -h -r -o SQUEUE_FORMAT`: every array task on its own row. */
export interface SqueueRow {
  /** `12_3` for an array task, `12` for a plain job */
  jobId: string
  arrayJobId: string
  taskId?: number
  /** PENDING, RUNNING, COMPLETING, … */
  state: string
  /** %r: why it waits (Resources, Priority, JobArrayTaskLimit, PartitionDown …); `None` once running */
  reason: string
}

/** One line of `sacct -P -X -n --format=SACCT_FORMAT`. */
export interface SacctRow {
  /** `12_3` for an array task, `12` for a plain job */
  jobId: string
  /** Slurm's own id of this task (array tasks get ids of their own once they start; the array's id while pending) */
  jobIdRaw: string
  arrayJobId: string
  taskId?: number
  /** COMPLETED, FAILED, CANCELLED (without sacct's "by UID"), TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PENDING, RUNNING … */
  state: string
  exitCode: number
  /** the signal that ended it (0 when it exited) */
  signal: number
}

const SEP = '|'
export const SQUEUE_FORMAT = ['%i', '%F', '%K', '%T', '%r'].join(SEP)
export const SACCT_FORMAT = 'JobID,JobIDRaw,State,ExitCode'

/** `12_3` → array 12, task 3; `12` → job 12, no task */
function splitJobId (jobId: string): { arrayJobId: string, taskId?: number } {
  const m = /^(\d+)_(\d+)$/.exec(jobId)
  return m != null ? { arrayJobId: m[1]!, taskId: Number(m[2]) } : { arrayJobId: jobId }
}

function lines (text: string): string[] {
  return text.split('\n').map(l => l.trim()).filter(l => l !== '')
}

export function parseSqueue (text: string): SqueueRow[] {
  return lines(text).flatMap((line): SqueueRow[] => {
    const [jobId, arrayJobId, task, state, ...reason] = line.split(SEP)
    if (jobId == null || arrayJobId == null || state == null) return []
    const taskId = /^\d+$/.test(task ?? '') ? Number(task) : undefined
    return [{ jobId, arrayJobId, ...(taskId != null ? { taskId } : {}), state, reason: reason.join(SEP) }]
  })
}

/**
 * Task ids of a pending range as sacct prints it: `12_[3-5,7%2]` → 3, 4, 5, 7
 * (the `%2` is the array's throttle, not a task).
 */
export function expandTaskRange (spec: string): number[] {
  const ids: number[] = []
  for (const part of spec.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part)
    if (m == null) continue
    const from = Number(m[1])
    const to = m[2] != null ? Number(m[2]) : from
    const step = m[3] != null ? Math.max(1, Number(m[3])) : 1
    for (let i = from; i <= to; i += step) ids.push(i)
  }
  return ids
}

/**
 * sacct's rows, one per array task. A range of tasks that have not started
 * (`12_[3-5]`, state PENDING) becomes one PENDING row per task, so a caller
 * counts tasks without parsing ranges; a task that also has a row of its own
 * keeps that row. Rows that name no job (sacct's placeholders while
 * accounting catches up) are skipped.
 */
export function parseSacct (text: string): SacctRow[] {
  const rows = new Map<string, SacctRow>()
  const pending: SacctRow[] = []
  for (const line of lines(text)) {
    const [jobId, jobIdRaw, rawState, exit] = line.split(SEP)
    if (jobId == null || jobIdRaw == null || rawState == null || exit == null || !/^\d/.test(jobId)) continue
    // `CANCELLED by 0`: the UID that cancelled it
    const state = rawState.split(' ')[0]!
    const [code, sig] = exit.split(':').map(Number)
    const outcome = { state, exitCode: Number.isFinite(code) ? code! : 0, signal: Number.isFinite(sig) ? sig! : 0 }
    const range = /^(\d+)_\[(.+)\]$/.exec(jobId)
    if (range != null) {
      for (const taskId of expandTaskRange(range[2]!)) {
        pending.push({ jobId: `${range[1]!}_${taskId}`, jobIdRaw, arrayJobId: range[1]!, taskId, ...outcome })
      }
      continue
    }
    rows.set(jobId, { jobId, jobIdRaw, ...splitJobId(jobId), ...outcome })
  }
  for (const row of pending) if (!rows.has(row.jobId)) rows.set(row.jobId, row)
  return [...rows.values()]
}

/** The job id `sbatch --parsable` printed: `123` or `123;cluster` */
export function parseSbatch (stdout: string): string | undefined {
  const id = stdout.trim().split('\n').at(-1)?.split(';')[0]?.trim()
  return id != null && /^\d+$/.test(id) ? id : undefined
}
