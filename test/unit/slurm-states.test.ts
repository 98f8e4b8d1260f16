import { describe, expect, it } from 'vitest'
import { expandTaskRange, parseSacct, parseSbatch, parseSqueue, type SacctRow, type SqueueRow } from '../../bootstrap/slurm/parse.ts'
import { allocationView, taskOutcome } from '../../bootstrap/slurm/states.ts'

// What Slurm 22.05 printed here for `squeue -h -r -o '%i|%F|%K|%T|%r'` and
// `sacct -P -X -n --format=JobID,JobIDRaw,State,ExitCode` on an --array=0-9%2 job.
const SQUEUE = `7_2|7|2|PENDING|JobArrayTaskLimit
7_3|7|3|PENDING|JobArrayTaskLimit
7_1|7|1|RUNNING|None
7_0|7|0|RUNNING|None
`
const SACCT = `7_0|8|RUNNING|0:0
7_1|9|RUNNING|0:0
7_[2-9%2]|7|PENDING|0:0
`

function sq (task: number, state: string, reason = 'None'): SqueueRow {
  return { jobId: `12_${task}`, arrayJobId: '12', taskId: task, state, reason }
}
function sa (task: number, state: string, exitCode = 0, signal = 0): SacctRow {
  return { jobId: `12_${task}`, jobIdRaw: String(12 + task), arrayJobId: '12', taskId: task, state, exitCode, signal }
}

describe('parsing Slurm output', () => {
  it('squeue: one row per array task', () => {
    expect(parseSqueue(SQUEUE)).toEqual([
      { jobId: '7_2', arrayJobId: '7', taskId: 2, state: 'PENDING', reason: 'JobArrayTaskLimit' },
      { jobId: '7_3', arrayJobId: '7', taskId: 3, state: 'PENDING', reason: 'JobArrayTaskLimit' },
      { jobId: '7_1', arrayJobId: '7', taskId: 1, state: 'RUNNING', reason: 'None' },
      { jobId: '7_0', arrayJobId: '7', taskId: 0, state: 'RUNNING', reason: 'None' }
    ])
    expect(parseSqueue('15|15|N/A|RUNNING|None\n')).toEqual([{ jobId: '15', arrayJobId: '15', state: 'RUNNING', reason: 'None' }])
    expect(parseSqueue('')).toEqual([])
  })

  it('sacct: a pending range becomes one PENDING row per task', () => {
    const rows = parseSacct(SACCT)
    expect(rows.map(r => [r.jobId, r.state])).toEqual([
      ['7_0', 'RUNNING'], ['7_1', 'RUNNING'], ...[2, 3, 4, 5, 6, 7, 8, 9].map(t => [`7_${t}`, 'PENDING'])
    ])
    expect(rows[0]).toEqual({ jobId: '7_0', jobIdRaw: '8', arrayJobId: '7', taskId: 0, state: 'RUNNING', exitCode: 0, signal: 0 })
    expect(rows[2]).toEqual({ jobId: '7_2', jobIdRaw: '7', arrayJobId: '7', taskId: 2, state: 'PENDING', exitCode: 0, signal: 0 })
  })

  it('sacct: exit codes and signals, "CANCELLED by UID", a task with its own row wins over a stale range, placeholders skipped', () => {
    const rows = parseSacct('1_1|3|FAILED|3:0\n1_5|1|CANCELLED by 0|0:15\n1_[4-5]|1|PENDING|0:0\n|||\nallocation|x|y|z\n20|20|COMPLETED|0:0\n')
    expect(rows).toEqual([
      { jobId: '1_1', jobIdRaw: '3', arrayJobId: '1', taskId: 1, state: 'FAILED', exitCode: 3, signal: 0 },
      { jobId: '1_5', jobIdRaw: '1', arrayJobId: '1', taskId: 5, state: 'CANCELLED', exitCode: 0, signal: 15 },
      { jobId: '20', jobIdRaw: '20', arrayJobId: '20', state: 'COMPLETED', exitCode: 0, signal: 0 },
      { jobId: '1_4', jobIdRaw: '1', arrayJobId: '1', taskId: 4, state: 'PENDING', exitCode: 0, signal: 0 }
    ])
  })

  it('task ranges with lists, steps and throttles', () => {
    expect(expandTaskRange('3-5,7%2')).toEqual([3, 4, 5, 7])
    expect(expandTaskRange('0-10:5')).toEqual([0, 5, 10])
    expect(expandTaskRange('4')).toEqual([4])
  })

  it('sbatch --parsable: the id, without a cluster name', () => {
    expect(parseSbatch('123\n')).toBe('123')
    expect(parseSbatch('123;zp\n')).toBe('123')
    expect(parseSbatch('sbatch: warning: x\n')).toBeUndefined()
  })
})

describe('allocationView', () => {
  it('PENDING while every task waits, with squeue\'s reason', () => {
    expect(allocationView(3, [sq(0, 'PENDING', 'Resources'), sq(1, 'PENDING', 'Resources'), sq(2, 'PENDING', 'Priority')], []))
      .toEqual({ state: 'PENDING', requested: 3, running: 0, reason: 'Resources, Priority' })
    expect(allocationView(1, [sq(0, 'PENDING', 'PartitionDown')], []).reason).toBe('PartitionDown')
  })

  it('RUNNING while any task runs, counting them; the waiting ones and failed ones in the reason', () => {
    expect(allocationView(3, [sq(0, 'RUNNING'), sq(1, 'RUNNING'), sq(2, 'RUNNING')], [])).toEqual({ state: 'RUNNING', requested: 3, running: 3 })
    expect(allocationView(4, [sq(0, 'RUNNING'), sq(1, 'COMPLETING'), sq(2, 'PENDING', 'Resources')], [sa(3, 'TIMEOUT', 0, 15)]))
      .toEqual({ state: 'RUNNING', requested: 4, running: 2, reason: '1 pending (Resources); task 3 TIMEOUT (time limit)' })
  })

  it('ENDED once no task is left and each one completed or was cancelled', () => {
    expect(allocationView(3, [], [sa(0, 'COMPLETED'), sa(1, 'CANCELLED'), sa(2, 'COMPLETED')]))
      .toEqual({ state: 'ENDED', requested: 3, running: 0, reason: '2 COMPLETED, 1 CANCELLED' })
  })

  it('FAILED when a task failed, timed out, lost its node or ran out of memory, naming which and why', () => {
    const view = allocationView(5, [], [sa(0, 'COMPLETED'), sa(1, 'FAILED', 3), sa(2, 'TIMEOUT'), sa(3, 'NODE_FAIL'), sa(4, 'OUT_OF_MEMORY', 0, 9)])
    expect(view).toEqual({
      state: 'FAILED',
      requested: 5,
      running: 0,
      reason: 'task 1 FAILED (exit code 3); task 2 TIMEOUT (time limit); task 3 NODE_FAIL (node failure); task 4 OUT_OF_MEMORY (memory limit)'
    })
    expect(allocationView(1, [], [sa(0, 'BOOT_FAIL')]).state).toBe('FAILED')
    const many = allocationView(8, [], [0, 1, 2, 3, 4, 5, 6, 7].map(t => sa(t, 'FAILED', 1)))
    expect(many.reason).toMatch(/task 4 FAILED \(exit code 1\); and 3 more$/)
  })

  it('while sacct catches up with squeue, keeps what it knew', () => {
    const last = { state: 'RUNNING' as const, requested: 3, running: 2 }
    // gone from squeue, sacct still says running (it lags ~2.5 s)
    expect(allocationView(3, [], [sa(0, 'COMPLETED'), sa(1, 'RUNNING'), sa(2, 'RUNNING')], last))
      .toEqual({ state: 'RUNNING', requested: 3, running: 2, reason: 'accounting catching up' })
    // a task missing from sacct altogether
    expect(allocationView(3, [], [sa(0, 'COMPLETED'), sa(1, 'COMPLETED')], last)).toEqual({ ...last, reason: 'accounting catching up' })
    // no earlier view: what sacct still says
    expect(allocationView(2, [], [sa(0, 'RUNNING'), sa(1, 'COMPLETED')])).toEqual({ state: 'RUNNING', requested: 2, running: 1, reason: 'accounting catching up' })
    expect(allocationView(2, [], [])).toEqual({ state: 'PENDING', requested: 2, running: 0, reason: 'accounting catching up' })
  })
})

describe('taskOutcome', () => {
  it('says whether a detached task is over, whether its shard was made, and why not', () => {
    expect(taskOutcome(sa(0, 'COMPLETED'))).toEqual({ final: true, ok: true, cause: 'completed' })
    expect(taskOutcome(sa(0, 'FAILED', 3))).toEqual({ final: true, ok: false, cause: 'exit code 3' })
    expect(taskOutcome(sa(0, 'FAILED', 0, 9))).toEqual({ final: true, ok: false, cause: 'killed by signal 9' })
    expect(taskOutcome(sa(0, 'TIMEOUT', 0, 15))).toEqual({ final: true, ok: false, cause: 'TIMEOUT: the time limit killed it' })
    expect(taskOutcome(sa(0, 'CANCELLED'))).toEqual({ final: true, ok: false, cause: 'CANCELLED: cancelled with scancel' })
    expect(taskOutcome(sa(0, 'OUT_OF_MEMORY'))).toMatchObject({ final: true, ok: false, cause: expect.stringMatching(/^OUT_OF_MEMORY: .*--mem/) })
    expect(taskOutcome(sa(0, 'NODE_FAIL'))).toMatchObject({ final: true, ok: false })
  })

  it('a task that waits or runs is not over; nor is a state this code does not know (resubmitting it could run it twice)', () => {
    for (const state of ['PENDING', 'RUNNING', 'REQUEUED', 'SUSPENDED', 'COMPLETING']) {
      expect(taskOutcome(sa(0, state)).final).toBe(false)
    }
    expect(taskOutcome(sa(0, 'NEW_STATE'))).toEqual({ final: false, ok: false, cause: 'not finished (NEW_STATE, a state this bridge does not know)' })
  })
})
