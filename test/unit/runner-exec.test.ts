import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createExecRunner } from '../../actors/worker/runners/exec-runner.ts'
import { ShardFailure, type ExecTemplates, type Runner } from '../../actors/worker/runners/types.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { execTask, fixture, recordingContext, runnerEnv } from '../fixtures/runners/tasks.ts'

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
const EMIT = fixture('emit.py')

let dir: { path: string, remove: () => Promise<void> }
let runner: Runner | undefined
beforeEach(async () => { dir = await tempDir('zp-exec-') })
afterEach(async () => {
  await runner?.close()
  await dir.remove()
})

function start (templates: ExecTemplates, killGraceMs = 2_000): Runner {
  runner = createExecRunner(runnerEnv({ execTemplates: templates }), { killGraceMs })
  return runner
}

async function failureOf (promise: Promise<unknown>): Promise<ShardFailure> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ShardFailure)
  return err as ShardFailure
}

/** Gone, or a zombie nobody has reaped yet (PID 1 of a container may not): either way it runs no more. */
function isGone (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return true
  }
}

describe('exec runner', () => {
  it('runs a template with its placeholders filled in, turning stdout JSON lines into rows', async () => {
    const r = start({
      emit: {
        argv: [PYTHON, EMIT, 'rows', '--seed', '{seed}', '--range={start}-{end}', '{params.label}', '{params.alpha}', '{{literal}}', '{campaign}/{index}/{attempt}'],
        env: { OMP_NUM_THREADS: '1' },
        cwd: dir.path
      }
    })
    const ctx = recordingContext()
    const task = execTask('emit', { index: 4, seed: 42, start: 100, end: 200, attempt: 2, params: { label: 'two words', alpha: 0.5 } })
    const { rows, info } = await r.run(task, ctx)
    expect(info).toEqual({ command: 'emit' })
    expect(rows).toEqual([
      // one argument each, spaces and all: there is no shell
      { argv: ['--seed', '42', '--range=100-200', 'two words', '0.5', '{literal}', 'c-test/4/2'] },
      {
        env: {
          OMP_NUM_THREADS: '1',
          ZP_SHARD: JSON.stringify(task.shard),
          ZP_PARAMS: JSON.stringify(task.params),
          ZP_SEED: '42',
          ZP_INDEX: '4',
          ZP_ATTEMPT: '2',
          ZP_CAMPAIGN: 'c-test'
        },
        cwd: dir.path
      },
      { last: true }
    ])
    expect(ctx.progressReports).toEqual([0.5])
  })

  it('refuses a command this node does not allow, naming those it does', async () => {
    const r = start({ emit: { argv: [PYTHON, EMIT] }, analyse: { argv: ['/bin/true'] } })
    const failure = await failureOf(r.run(execTask('rm-rf'), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toBe("shard 0 of campaign c-test (attempt 1): this node does not allow command 'rm-rf' (allowed: analyse, emit)")
  })

  it('fails for good on a parameter the campaign does not have', async () => {
    const failure = await failureOf(start({ emit: { argv: [PYTHON, EMIT, '{params.beta}'] } }).run(execTask('emit'), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toContain("command 'emit': the template uses {params.beta} but the campaign has no params.beta")
  })

  it('fails for good on a stdout line that is not JSON, naming the line, and kills the command', async () => {
    const started = performance.now()
    const failure = await failureOf(start({ emit: { argv: [PYTHON, EMIT, 'bad-line'] } }).run(execTask('emit'), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toContain('line 2 of its stdout is not JSON (each stdout line must be one JSON result row): Warning: this is not JSON')
    // the script sleeps for 1000 s after that line
    expect(performance.now() - started).toBeLessThan(15_000)
  })

  it('fails retryably on a non-zero exit, with the exit code and the end of stderr', async () => {
    const failure = await failureOf(start({ emit: { argv: [PYTHON, EMIT, 'fail'] } }).run(execTask('emit'), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toMatch(/^shard 0 of campaign c-test \(attempt 1\): command 'emit' exited with code 3; the end of its stderr:\n/)
    expect(failure.message).toMatch(/ValueError: negative density$/)
    expect(failure.message).not.toContain('step 0:')
    expect(failure.message.length).toBeLessThan(4096 + 200)
  })

  it('says what to check when the program cannot be started', async () => {
    const failure = await failureOf(start({ sim: { argv: ['/opt/no-such-sim/bin/run'] } }).run(execTask('sim'), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toContain('could not start /opt/no-such-sim/bin/run: spawn /opt/no-such-sim/bin/run ENOENT (is /opt/no-such-sim/bin/run installed and on PATH')
  })

  it.each([
    ['wait', 'SIGTERM'],
    ['ignore-term', 'SIGKILL after the grace period']
  ])('on cancel kills the whole process group, grandchildren included (%s: %s)', async (mode) => {
    const pidFile = join(dir.path, 'pids')
    const r = start({ group: { argv: ['sh', fixture('group.sh'), pidFile, mode] } }, 300)
    const controller = new AbortController()
    const started = Promise.withResolvers<void>()
    const result = r.run(execTask('group'), recordingContext(controller.signal, () => { started.resolve() }))
    result.catch(() => {})
    await Promise.race([started.promise, result])
    const pids = (await readFile(pidFile, 'utf8')).trim().split(' ').map(Number)
    expect(pids).toHaveLength(2)
    expect(pids.some(isGone)).toBe(false)
    const reason = new Error('cancelled')
    const abortedAt = performance.now()
    controller.abort(reason)
    await expect(result).rejects.toBe(reason)
    if (mode === 'ignore-term') expect(performance.now() - abortedAt).toBeGreaterThanOrEqual(250)
    await waitFor(() => pids.every(isGone), { timeoutMs: 10_000, what: `processes ${pids.join(', ')} to be gone` })
  })

  it('kills what a command left running when it exits, and keeps its rows', async () => {
    const pidFile = join(dir.path, 'pids')
    const r = start({ group: { argv: ['sh', fixture('group.sh'), pidFile, 'exit'] } })
    // the grandchild holds stdout open: without the group kill this would wait for it for 1000 s
    expect(await r.run(execTask('group'), recordingContext())).toEqual({ rows: [{ done: true }], info: { command: 'group' } })
    const pids = (await readFile(pidFile, 'utf8')).trim().split(' ').map(Number)
    await waitFor(() => pids.every(isGone), { timeoutMs: 10_000, what: 'the leftover grandchild to be gone' })
  })
})
