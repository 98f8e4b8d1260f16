import { afterEach, describe, expect, it } from 'vitest'
import { createModuleRunner, type ModuleRunner, type ModuleRunnerOptions } from '../../actors/worker/runners/module-runner.ts'
import { ShardFailure } from '../../actors/worker/runners/types.ts'
import { waitFor } from '../helpers.ts'
import { fixture, moduleTask, recordingContext, runnerEnv } from '../fixtures/runners/tasks.ts'

const PI = fixture('pi.mjs')
const BEHAVIOURS = fixture('behaviours.mjs')

let runner: ModuleRunner | undefined
afterEach(async () => { await runner?.close() })

function start (opts: ModuleRunnerOptions = {}, slots = 2): ModuleRunner {
  runner = createModuleRunner(runnerEnv({ slots }), opts)
  return runner
}

async function failureOf (promise: Promise<unknown>): Promise<ShardFailure> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ShardFailure)
  return err as ShardFailure
}

/** Starts a run of a mode that reports progress once it is under way, and resolves when it has. */
async function startedRun (r: ModuleRunner, mode: string, controller: AbortController): Promise<{ result: Promise<unknown> }> {
  const started = Promise.withResolvers<void>()
  const result = r.run(moduleTask(BEHAVIOURS, { params: { mode } }), recordingContext(controller.signal, () => { started.resolve() }))
  result.catch(() => {})
  await Promise.race([started.promise, result])
  return { result }
}

describe('module runner', () => {
  it('runs a seeded Monte Carlo module in a worker thread, with the same rows every time', async () => {
    const r = start()
    const task = moduleTask(PI, { index: 3, seed: 7, start: 0, end: 20_000 })
    const first = await r.run(task, recordingContext())
    const again = await r.run(task, recordingContext())
    expect(again).toEqual(first)
    expect(first.rows).toHaveLength(1)
    const row = first.rows[0] as { shard: number, total: number, pi: number }
    expect(row).toMatchObject({ shard: 3, total: 20_000, resumedFrom: null })
    expect(Math.abs(row.pi - Math.PI)).toBeLessThan(0.1)
    const otherSeed = await r.run(moduleTask(PI, { index: 3, seed: 8, start: 0, end: 20_000 }), recordingContext())
    expect(otherSeed.rows).not.toEqual(first.rows)
  })

  it('reuses the thread, and its one import, for the next shard of the same module', async () => {
    const r = start()
    const ctx = recordingContext()
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'count' } }), ctx)).toEqual({ rows: [{ runs: 1 }] })
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'count' } }), ctx)).toEqual({ rows: [{ runs: 2 }] })
    expect(r.stats()).toMatchObject({ threadsStarted: 1, threadsAlive: 1, threadsIdle: 1 })
  })

  it('starts no more threads per module than the node has slots', async () => {
    const r = start({}, 2)
    const runs = Array.from({ length: 5 }, () => r.run(moduleTask(PI, { end: 50_000 }), recordingContext()))
    await Promise.all(runs)
    expect(r.stats().threadsStarted).toBeLessThanOrEqual(2)
  })

  it('turns returned values into rows: an array as is, undefined as none', async () => {
    const r = start()
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'rows' } }), recordingContext())).toEqual({ rows: [{ a: 1 }, { a: 2, nested: [true, null, 'x'] }] })
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'noop' } }), recordingContext())).toEqual({ rows: [] })
  })

  it('fails a shard whose module throws, retryably, with the message and where it was thrown', async () => {
    const failure = await failureOf(start().run(moduleTask(BEHAVIOURS, { index: 5, start: 500, params: { mode: 'throw' } }), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toMatch(/^shard 5 of campaign c-test \(attempt 1\): module behaviours\.mjs failed: simulation diverged at step 500 \(at run \(file:.*behaviours\.mjs:\d+:\d+\)\)$/)
  })

  it('honours retryable = false on a thrown error', async () => {
    const failure = await failureOf(start().run(moduleTask(BEHAVIOURS, { params: { mode: 'throw-permanent' } }), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toContain('parameter alpha must be positive')
  })

  it('refuses, for good, a module without a run export, or one that cannot be imported or exits while imported', async () => {
    const r = start()
    const noRun = await failureOf(r.run(moduleTask(fixture('no-run.mjs')), recordingContext()))
    expect(noRun.retryable).toBe(false)
    expect(noRun.message).toMatch(/module no-run\.mjs \(.*no-run\.mjs\): it has no export named run; a campaign module must export run\(shard, ctx\)/)
    const broken = await failureOf(r.run(moduleTask(fixture('import-fails.mjs')), recordingContext()))
    expect(broken.retryable).toBe(false)
    expect(broken.message).toContain('cannot import it: this module needs /opt/sims/table.bin, which is missing')
    const exits = await failureOf(r.run(moduleTask(fixture('exits-on-import.mjs')), recordingContext()))
    expect(exits.retryable).toBe(false)
    expect(exits.message).toContain('while being imported, the module ended its worker thread (process.exit(3))')
    await waitFor(() => r.stats().threadsAlive === 0, { timeoutMs: 10_000, what: 'the threads of modules that failed to load to exit' })
  })

  it('rejects with the abort reason soon after a cancel the module honours, and keeps the thread', async () => {
    const r = start({ abortGraceMs: 15_000 })
    const controller = new AbortController()
    const { result } = await startedRun(r, 'cooperative', controller)
    const reason = new Error('cancelled by the coordinator')
    const abortedAt = performance.now()
    controller.abort(reason)
    await expect(result).rejects.toBe(reason)
    // well inside the grace: the module stopped by itself, its thread was not terminated
    expect(performance.now() - abortedAt).toBeLessThan(5_000)
    expect(r.stats()).toMatchObject({ threadsStarted: 1, threadsAlive: 1 })
  })

  it('terminates, and replaces, the thread of a module that ignores the abort for the grace period', async () => {
    const r = start({ abortGraceMs: 300 })
    const controller = new AbortController()
    const { result } = await startedRun(r, 'ignore-abort', controller)
    const abortedAt = performance.now()
    controller.abort(new Error('shard timed out'))
    await expect(result).rejects.toThrow('shard timed out')
    expect(performance.now() - abortedAt).toBeGreaterThanOrEqual(250)
    expect(r.stats().threadsAlive).toBe(0)
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'count' } }), recordingContext())).toEqual({ rows: [{ runs: 1 }] })
    expect(r.stats().threadsStarted).toBe(2)
  })

  it('fails the shard of a module that calls process.exit(), and runs the next shard on a new thread', async () => {
    const r = start()
    const failure = await failureOf(r.run(moduleTask(BEHAVIOURS, { params: { mode: 'exit' } }), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toContain('the module ended its worker thread (process.exit(7))')
    expect(await r.run(moduleTask(BEHAVIOURS, { params: { mode: 'rows' } }), recordingContext())).toMatchObject({ rows: [{ a: 1 }, { a: 2 }] })
    expect(r.stats().threadsStarted).toBe(2)
  })

  it('fails the shard of a module whose callback throws, without harm to the node', async () => {
    const failure = await failureOf(start().run(moduleTask(BEHAVIOURS, { params: { mode: 'uncaught' } }), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toContain('the module threw outside run()')
    expect(failure.message).toContain('Error: thrown from a callback')
  })

  it('passes progress (rate-limited), checkpoints and resumeFrom between module and worker', async () => {
    const r = start()
    const ctx = recordingContext()
    const started = performance.now()
    const { rows } = await r.run(moduleTask(PI, { end: 200_000, params: { checkpointEvery: 1000 }, resumeFrom: { done: 0 } }), ctx)
    const elapsed = performance.now() - started
    expect(ctx.checkpoints).toHaveLength(200)
    expect(ctx.checkpoints[0]).toEqual({ done: 1000, inside: expect.any(Number) })
    expect(ctx.checkpoints.at(-1)).toEqual({ done: 200_000, inside: (rows[0] as { inside: number }).inside })
    expect(rows[0]).toMatchObject({ resumedFrom: { done: 0 } })
    // 200 progress calls, at most one report per 100 ms (plus the first)
    expect(ctx.progressReports.length).toBeGreaterThanOrEqual(1)
    expect(ctx.progressReports.length).toBeLessThanOrEqual(Math.ceil(elapsed / 100) + 1)
    expect([...ctx.progressReports].sort((a, b) => a - b)).toEqual(ctx.progressReports)
  })

  it('fails the shard when the worker cannot save a checkpoint', async () => {
    const ctx = { ...recordingContext(), checkpoint: async () => { throw new Error('LevelDB is closed') } }
    const failure = await failureOf(start().run(moduleTask(PI, { end: 2000, params: { checkpointEvery: 1000 } }), ctx))
    expect(failure.message).toContain('the worker could not save the checkpoint: LevelDB is closed')
  })

  it.each([
    ['bigint', 'run() result[1].count is a BigInt'],
    ['function', 'run() result.callback is a function'],
    ['cycle', 'run() result.self refers back to one of its own parents (a cycle)'],
    ['map', 'run() result is a Map object, not a plain object or array'],
    ['bad-checkpoint', 'checkpoint state.f is a function; checkpoints are stored and replicated']
  ])('refuses a result that is not plain JSON data (%s), naming where', async (mode, problem) => {
    const failure = await failureOf(start().run(moduleTask(BEHAVIOURS, { index: 2, params: { mode } }), recordingContext()))
    expect(failure.message).toContain('shard 2 of campaign c-test')
    expect(failure.message).toContain(problem)
    // a bad result is a bug in the module, the same on every retry; a throw from checkpoint() is the module's own failure
    expect(failure.retryable).toBe(mode === 'bad-checkpoint')
  })

  it('ends idle threads after the idle time, and all threads on close', async () => {
    const r = start({ idleMs: 200 })
    await r.run(moduleTask(PI), recordingContext())
    await waitFor(() => r.stats().threadsAlive === 0, { timeoutMs: 10_000, what: 'the idle thread to exit' })
    const controller = new AbortController()
    const { result } = await startedRun(r, 'ignore-abort', controller)
    await r.close()
    await expect(result).rejects.toThrow('the module runner was closed while the shard ran')
    expect(r.stats().threadsAlive).toBe(0)
    await expect(r.run(moduleTask(PI), recordingContext())).rejects.toThrow('the module runner is closed')
  })
})
