import { existsSync } from 'node:fs'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SlurmClient, SlurmError, type SacctRow } from '../../bootstrap/slurm/commands.ts'
import { attachedScript } from '../../bootstrap/slurm/script.ts'
import { allocationView, taskOutcome } from '../../bootstrap/slurm/states.ts'
import { startSlurm, type SlurmCluster } from '../clusters/slurm.ts'
import { tempDir, waitFor } from '../helpers.ts'

/*
 * The Slurm client against the project's real single-node Slurm 22.05
 * (slurmctld, slurmd, slurmdbd for sacct): sbatch arrays, squeue, sacct's final
 * states, scancel, and the attached script's drain under a real scancel. The
 * node the attached script starts is a stand-in that records its argv and
 * signals and drains for 1 s.
 */
const FAKE_NODE = fileURLToPath(new URL('../fixtures/slurm/fake-node.sh', import.meta.url))

let cluster: SlurmCluster | undefined
let skipReason = ''
let scratch: { path: string, remove: () => Promise<void> }
let client: SlurmClient

beforeAll(async () => {
  scratch = await tempDir('zp-slurm-client-')
  const started = await startSlurm()
  if ('skip' in started) {
    skipReason = started.skip
    console.warn(skipReason)
    return
  }
  cluster = started
  client = new SlurmClient({ env: { ...cluster.env, FAKE_NODE_RECORD: join(scratch.path, 'rec'), SLURM_TMPDIR: scratch.path } })
})

// the cluster itself is stopped by the run's teardown (test/clusters/global-setup.ts), after every file that shares it
afterAll(async () => { await scratch.remove() })

async function jobScript (name: string, body: string): Promise<string> {
  const file = join(scratch.path, name)
  await writeFile(file, `#!/bin/bash\n${body}\n`)
  await chmod(file, 0o755)
  return file
}

/** sacct's rows for the job once every task has a final state there (it lags squeue by ~2.5 s) */
async function finalRows (job: string, tasks: number, signal: AbortSignal): Promise<SacctRow[]> {
  return await waitFor(async () => {
    const rows = await client.sacct([job], signal)
    return rows.length === tasks && rows.every(r => taskOutcome(r).final) ? rows.sort((a, b) => (a.taskId ?? 0) - (b.taskId ?? 0)) : undefined
  }, { timeoutMs: 60_000, intervalMs: 250, what: `sacct to show job ${job}'s ${tasks} tasks final` })
}

describe('SlurmClient against a real Slurm', () => {
  it('an array of 3: squeue lists each task, scancel ends one, sacct gives every final state and the failed task\'s exit code', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const signal = AbortSignal.timeout(120_000)
    const script = await jobScript('three.sh', 'case "$SLURM_ARRAY_TASK_ID" in 1) exit 3 ;; 2) exec sleep 300 ;; esac\nsleep 0.5')
    const job = await client.sbatch(script, ['--array=0-2', '--job-name=zp-three', `--output=${scratch.path}/%A_%a.out`], signal)
    expect(job).toMatch(/^\d+$/)

    // one row per task still there (task 1 may already have exited)
    const queued = await client.squeue([job], signal)
    expect(queued.length).toBeGreaterThan(0)
    for (const r of queued) {
      expect([0, 1, 2]).toContain(r.taskId)
      expect(r).toMatchObject({ jobId: `${job}_${r.taskId!}`, arrayJobId: job, state: expect.stringMatching(/^(PENDING|RUNNING|COMPLETING)$/) })
    }
    await waitFor(async () => (await client.squeue([job], signal)).find(r => r.taskId === 2 && r.state === 'RUNNING'), { what: 'task 2 to run' })

    await client.scancel([`${job}_2`], signal)
    await waitFor(async () => (await client.squeue([job], signal)).length === 0, { timeoutMs: 30_000, what: 'the array to leave squeue' })
    const rows = await finalRows(job, 3, signal)
    expect(rows.map(r => ({ jobId: r.jobId, arrayJobId: r.arrayJobId, taskId: r.taskId, state: r.state, exitCode: r.exitCode }))).toEqual([
      { jobId: `${job}_0`, arrayJobId: job, taskId: 0, state: 'COMPLETED', exitCode: 0 },
      { jobId: `${job}_1`, arrayJobId: job, taskId: 1, state: 'FAILED', exitCode: 3 },
      { jobId: `${job}_2`, arrayJobId: job, taskId: 2, state: 'CANCELLED', exitCode: 0 }
    ])
    expect(rows.every(r => /^\d+$/.test(r.jobIdRaw))).toBe(true)
    expect(allocationView(3, [], rows)).toEqual({ state: 'FAILED', requested: 3, running: 0, reason: 'task 1 FAILED (exit code 3)' })

    // jobs that are gone (or never were) are no error for squeue and scancel
    expect(await client.squeue(['999999'], signal)).toEqual([])
    await client.scancel(['999999', `${job}_2`], signal)
  })

  it('sbatch to a partition that does not exist: a SlurmError naming it and the partitions there are', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const signal = AbortSignal.timeout(60_000)
    expect(await client.partitions(signal)).toEqual(['debug'])
    const script = await jobScript('true.sh', 'true')
    const err = await client.sbatch(script, ['--partition=gpu-nope', '--output=/dev/null'], signal).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SlurmError)
    expect(err).toMatchObject({ code: 'invalid-partition' })
    expect((err as Error).message).toMatch(/no partition "gpu-nope": the partitions here are debug; pass one of them with --partition/)
    expect((err as Error).message).toMatch(/sbatch said: .*invalid partition/i)
  })

  it('a controller that does not answer, a SLURM_CONF that is not there: SlurmErrors saying so', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const signal = AbortSignal.timeout(60_000)
    const conf = join(scratch.path, 'elsewhere.conf')
    // nothing listens on port 1; MessageTimeout=2 makes the commands give up after 2 s instead of 18
    await writeFile(conf, (await readFile(c.env.SLURM_CONF!, 'utf8')).replace(/^SlurmctldPort=\d+$/m, 'SlurmctldPort=1') + 'MessageTimeout=2\n')
    const unreachable = await new SlurmClient({ env: { ...c.env, SLURM_CONF: conf } }).squeue(['1'], signal).catch((e: unknown) => e)
    expect(unreachable).toMatchObject({ name: 'SlurmError', code: 'unreachable' })
    expect((unreachable as Error).message).toMatch(/controller \(slurmctld\) is unreachable: check that it runs \(scontrol ping\)/)

    const missing = await new SlurmClient({ env: { ...c.env, SLURM_CONF: join(scratch.path, 'none.conf') } }).squeue(['1'], signal).catch((e: unknown) => e)
    expect(missing).toMatchObject({ name: 'SlurmError', code: 'no-config' })
    expect((missing as Error).message).toMatch(/none\.conf, which cannot be read: point SLURM_CONF at the cluster's slurm\.conf/)
  })

  it('the attached script under scancel: each node gets SIGTERM once, drains, the job ends and its data dir is gone', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const signal = AbortSignal.timeout(120_000)
    const { script, args } = attachedScript({
      nodes: 2,
      argv: ['/bin/bash', FAKE_NODE],
      bootstrap: ['/ip4/127.0.0.1/tcp/1'],
      drainMs: 5_000,
      jobName: 'zp-drain',
      logDir: scratch.path
    })
    const file = join(scratch.path, 'attached.sh')
    await writeFile(file, script)
    const job = await client.sbatch(file, args, signal)
    const rec = (task: number): string => join(scratch.path, 'rec', `task-${task}`)
    await waitFor(() => existsSync(join(rec(0), 'started')) && existsSync(join(rec(1), 'started')), { timeoutMs: 30_000, what: 'both nodes to start' })
    const dataDirs = await Promise.all([0, 1].map(async t => await readFile(join(rec(t), 'data-dir'), 'utf8')))
    expect(dataDirs).toEqual([join(scratch.path, `zp-${job}_0`), join(scratch.path, `zp-${job}_1`)])
    expect(dataDirs.every(d => existsSync(d))).toBe(true)

    await client.scancel([job], signal)
    await waitFor(async () => (await client.squeue([job], signal)).length === 0, { timeoutMs: 30_000, what: 'the array to leave squeue' })
    for (const t of [0, 1]) {
      expect(await readFile(join(rec(t), 'signals'), 'utf8')).toBe('TERM\n')
      // the batch shell outlived the drain: had it ended, Slurm would have SIGKILLed the node mid-drain
      expect(existsSync(join(rec(t), 'drained'))).toBe(true)
      expect(existsSync(dataDirs[t]!)).toBe(false)
      expect(await readFile(join(scratch.path, `${job}_${t}.out`), 'utf8')).toMatch(/waiting for the node to drain/)
    }
    const rows = await finalRows(job, 2, signal)
    expect(rows.every(r => ['CANCELLED', 'COMPLETED'].includes(r.state))).toBe(true)
    expect(allocationView(2, [], rows).state).toBe('ENDED')
  })
})

describe('SlurmClient without Slurm', () => {
  it('a PATH without the Slurm commands: a SlurmError naming the fix', async () => {
    const client = new SlurmClient({ env: { ...process.env, PATH: '/nonexistent' } })
    const signal = AbortSignal.timeout(10_000)
    const err = await client.sbatch('/tmp/job.sh', [], signal).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SlurmError)
    expect(err).toMatchObject({ code: 'not-installed', command: 'sbatch' })
    expect((err as Error).message).toBe('sbatch not found on PATH: install the Slurm client (apt-get install slurm-client) or run zp-node where sbatch works')
    await expect(client.check(signal)).rejects.toThrow(/^sbatch, squeue, sacct, scancel, sinfo not found on PATH: install the Slurm client/)
  })

  it('a timeout and an abort end the command', async () => {
    const dir = await tempDir('zp-slurm-slow-')
    try {
      // a squeue that never answers
      await writeFile(join(dir.path, 'squeue'), '#!/bin/sh\nexec sleep 30\n')
      await chmod(join(dir.path, 'squeue'), 0o755)
      const env = { ...process.env, PATH: `${dir.path}:${process.env.PATH ?? ''}` }
      const slow = new SlurmClient({ env, timeoutMs: 300 })
      const err = await slow.squeue(['1'], AbortSignal.timeout(10_000)).catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'SlurmError', code: 'timeout' })
      expect((err as Error).message).toMatch(/^squeue did not finish within 0.3 s: the Slurm controller may be overloaded or unreachable/)

      const controller = new AbortController()
      const pending = new SlurmClient({ env }).squeue(['1'], controller.signal)
      controller.abort(new Error('the caller gave up'))
      await expect(pending).rejects.toThrow('the caller gave up')
    } finally {
      await dir.remove()
    }
  })
})
