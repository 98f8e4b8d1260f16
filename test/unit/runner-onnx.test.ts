import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import ort from 'onnxruntime-node'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { inferShard } from '../../actors/worker/runners/onnx-infer.ts'
import type { RunRequest } from '../../actors/worker/runners/onnx-protocol.ts'
import { createOnnxRunner, type OnnxRunner, type OnnxRunnerOptions } from '../../actors/worker/runners/onnx-runner.ts'
import { ShardFailure, type RunnerEnvironment } from '../../actors/worker/runners/types.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { buildDenseModel, denseExpected, type Dense } from '../fixtures/runners/onnx-models.ts'
import { onnxTask, recordingContext, runnerEnv, type OnnxWorkload } from '../fixtures/runners/tasks.ts'

// y = x·W + b with x = (a, b, c): two outputs per row, and a one-output variant
const TWO: Dense = { weights: [[1, 2], [3, 4], [5, 6]], bias: [0.5, -1] }
const ONE: Dense = { weights: [[1], [-2], [0.25]], bias: [3] }
const DATA_COLUMNS = ['id', 'a', 'b', 'c', 'note']

/** Data rows as [a, b, c]: row i is (i, i / 2, 10 - i). */
const inputs = (count: number, first = 0): number[][] => Array.from({ length: count }, (_, k) => [first + k, (first + k) / 2, 10 - first - k])

let dir: { path: string, remove: () => Promise<void> }
let twoModel: string
let oneModel: string
let runner: OnnxRunner | undefined

beforeAll(async () => {
  dir = await tempDir('zp-onnx-')
  twoModel = join(dir.path, 'two.onnx')
  oneModel = join(dir.path, 'one.onnx')
  await writeFile(twoModel, buildDenseModel([TWO]))
  await writeFile(oneModel, buildDenseModel([ONE], { input: 'features', output: 'score' }))
})
afterAll(async () => { await dir.remove() })
afterEach(async () => { await runner?.close() })

function start (overrides: Partial<RunnerEnvironment> = {}, opts: OnnxRunnerOptions = {}): OnnxRunner {
  runner = createOnnxRunner(runnerEnv(overrides), opts)
  return runner
}

let fileCount = 0
async function slice (text: string): Promise<string> {
  const file = join(dir.path, `slice-${++fileCount}`)
  await writeFile(file, text)
  return file
}

/** A CSV slice (no header) of the given input rows, with an id and a quoted note that holds a comma. */
const csvOf = (rows: number[][], lineEnd = '\n'): string =>
  rows.map(([a, b, c], k) => `${k},${a},${b},${c},"note ${k}, ""quoted"""`).join(lineEnd) + lineEnd

const csvWorkload = (extra: Partial<OnnxWorkload> = {}): Partial<OnnxWorkload> & Pick<OnnxWorkload, 'input'> => ({
  data: { blob: { hash: '0'.repeat(64), size: 0, name: 'data.csv' }, format: 'csv', rows: 100_000, columns: DATA_COLUMNS },
  input: { columns: ['a', 'b', 'c'] },
  ...extra
})

async function failureOf (promise: Promise<unknown>): Promise<ShardFailure> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ShardFailure)
  return err as ShardFailure
}

/** Checks every row in plain JS (expect() per value is slow over 40k rows) and reports the first few that differ. */
function expectRows (rows: unknown[], layer: Dense, xs: number[][], firstRow: number): void {
  expect(rows).toHaveLength(xs.length)
  const wrong: string[] = []
  rows.forEach((row, k) => {
    const expected = denseExpected(layer, xs[k] ?? [])
    const { row: index, y } = row as { row: number, y: number | number[] }
    const got = Array.isArray(y) ? y : [y]
    const close = got.length === expected.length && got.every((v, j) => Math.abs(v - (expected[j] ?? NaN)) <= 1e-4 * Math.max(1, Math.abs(expected[j] ?? NaN)))
    if ((index !== firstRow + k || !close) && wrong.length < 5) wrong.push(`row ${k}: got ${JSON.stringify(row)}, expected row ${firstRow + k}: ${JSON.stringify(expected)}`)
  })
  expect(wrong).toEqual([])
}

describe('onnx runner', () => {
  it('runs a CSV slice in batches (10 rows, batch 4), one result row per data row with its global index', async () => {
    const xs = inputs(10, 1000)
    const data = await slice(csvOf(xs, '\r\n'))
    const ctx = recordingContext()
    const output = await start().run(onnxTask({ model: twoModel, data }, csvWorkload({ batchSize: 4 }), { start: 1000, end: 1010 }), ctx)
    expect(output.info).toEqual({ executionProvider: 'cpu' })
    expectRows(output.rows, TWO, xs, 1000)
    expect(Array.isArray((output.rows[0] as { y: unknown }).y)).toBe(true)
    expect(ctx.progressReports.at(0)).toBeCloseTo(0.4)
  })

  it('reads a slice of many read chunks (64 KiB), quoted fields across chunk boundaries included', async () => {
    const xs = inputs(40_000, 5)
    const data = await slice(csvOf(xs))
    const { rows } = await start().run(onnxTask({ model: twoModel, data }, csvWorkload({ batchSize: 1000 }), { start: 5, end: 40_005 }), recordingContext())
    expectRows(rows, TWO, xs, 5)
  })

  it('fails retryably when the slice file is missing: the worker, not the shard, is at fault', async () => {
    const failure = await failureOf(start().run(onnxTask({ model: twoModel, data: join(dir.path, 'gone.csv') }, csvWorkload(), { start: 0, end: 1 }), recordingContext()))
    expect(failure.retryable).toBe(true)
    expect(failure.message).toMatch(/^shard 0 of campaign c-test \(attempt 1\): ENOENT: no such file or directory/)
  })

  it('feeds the input columns in the order the workload lists them, whatever the data order', async () => {
    const xs = inputs(3)
    const data = await slice(csvOf(xs))
    const reordered = csvWorkload({ input: { columns: ['c', 'a', 'b'] } })
    const { rows } = await start().run(onnxTask({ model: twoModel, data }, reordered, { start: 0, end: 3 }), recordingContext())
    expectRows(rows, TWO, xs.map(([a, b, c]) => [c ?? NaN, a ?? NaN, b ?? NaN]), 0)
  })

  it('reads JSONL slices, names the model input and output, and gives a number when the model has one value per row', async () => {
    const xs = inputs(7, 50)
    const data = await slice(xs.map(([a, b, c]) => JSON.stringify({ c, b, a, extra: 'ignored' })).join('\n'))
    const workload = {
      data: { blob: { hash: '0'.repeat(64), size: 0, name: 'data.jsonl' }, format: 'jsonl' as const, rows: 100 },
      input: { name: 'features', columns: ['a', 'b', 'c'] },
      output: { name: 'score', column: 'y' },
      batchSize: 3
    }
    const { rows } = await start().run(onnxTask({ model: oneModel, data }, workload, { start: 50, end: 57 }), recordingContext())
    expectRows(rows, ONE, xs, 50)
    expect(typeof (rows[0] as { y: unknown }).y).toBe('number')
  })

  it('falls back to cpu when the campaign asks for a provider this node cannot load, and says why', async () => {
    const data = await slice(csvOf(inputs(2)))
    const output = await start().run(onnxTask({ model: twoModel, data }, csvWorkload({ executionProviders: ['cuda'] }), { start: 0, end: 2 }), recordingContext())
    expect(output.info).toMatchObject({ executionProvider: 'cpu', fallbackFrom: 'cuda', fallbackReason: expect.stringMatching(/^cuda: .+/) })
    expectRows(output.rows, TWO, inputs(2), 0)
  })

  it('skips a provider the probe found unusable, with the probe\'s reason, and never picks one by default unless it is ok', async () => {
    const report: CapabilityReport = {
      probedAt: 0,
      durationMs: 0,
      host: { hostname: 'h', platform: 'linux', arch: 'x64', cpuModel: '', cpuVendor: '', cores: 2, physicalCores: 2, memoryBytes: 0 },
      capabilities: {
        'onnx.ep.cpu': { status: 'ok' },
        'onnx.ep.cuda': { status: 'unavailable', reason: 'libcudart.so.12: cannot open shared object file' },
        'onnx.ep.webgpu': { status: 'ok' }
      }
    }
    const r = start({ capabilities: () => report })
    const data = await slice(csvOf(inputs(2)))
    const asked = await r.run(onnxTask({ model: twoModel, data }, csvWorkload({ executionProviders: ['cuda', 'cpu'] }), { start: 0, end: 2 }), recordingContext())
    expect(asked.info).toEqual({
      executionProvider: 'cpu',
      fallbackFrom: 'cuda',
      fallbackReason: "cuda: this node's probe found onnx.ep.cuda unavailable: libcudart.so.12: cannot open shared object file"
    })
    // by default webgpu is not chosen even though it probed ok, and an unusable cuda is not tried
    const byDefault = await r.run(onnxTask({ model: twoModel, data }, csvWorkload(), { start: 0, end: 2 }), recordingContext())
    expect(byDefault.info).toEqual({ executionProvider: 'cpu' })
  })

  it('opens a session once per thread, for each model and provider plan, and reuses it for every later shard', async () => {
    const r = start({ slots: 2 })
    const data = await slice(csvOf(inputs(5)))
    const task = onnxTask({ model: twoModel, data }, csvWorkload({ batchSize: 2 }), { start: 0, end: 5 })
    const [first, second] = await Promise.all([r.run(task, recordingContext()), r.run(task, recordingContext())])
    expect(second).toEqual(first)
    // one or two threads took the two shards, each with its own session
    const { threadsStarted } = r.stats()
    expect(threadsStarted).toBeLessThanOrEqual(2)
    expect(r.stats().sessionsCreated).toBe(threadsStarted)
    for (let i = 0; i < 4; i++) expect(await r.run(task, recordingContext())).toEqual(first)
    expect(r.stats()).toMatchObject({ threadsStarted, sessionsCreated: threadsStarted })
    await r.run(onnxTask({ model: oneModel, data }, csvWorkload({ input: { columns: ['a', 'b', 'c'], name: 'features' }, output: { column: 'y', name: 'score' } }), { start: 0, end: 5 }), recordingContext())
    expect(r.stats().sessionsCreated).toBe(threadsStarted + 1)
  })

  it.each([
    ['an input column the data set lacks', csvWorkload({ input: { columns: ['a', 'b', 'z'] } }), csvOf(inputs(2)),
      "input column 'z' is not a column of the data set (it has: id, a, b, c, note)"],
    ['a value that is not a number', csvWorkload(), '0,1,2,3,x\n1,1,oops,3,x\n',
      'row 101, column \'b\': "oops" is not a number'],
    ['an empty value', csvWorkload(), '0,1,2,3,x\n1,1,,3,x\n', 'row 101, column \'b\': "" is not a number'],
    ['a row with too few fields', csvWorkload(), '0,1,2,3,x\n1,1,2\n', "row 101 (line 2 of the shard's slice) has 3 fields, but the data set has 5 columns"],
    ['more input columns than the model takes', csvWorkload({ input: { columns: ['a', 'b', 'c', 'id'] } }), csvOf(inputs(2)),
      "model input 'x' takes 3 values per row (shape [n, 3]) but input.columns lists 4"],
    ['an output column that would hide the row index', csvWorkload({ output: { column: 'row' } }), csvOf(inputs(2)),
      "output.column 'row' would overwrite the row index every result row carries"],
    ['an input name the model lacks', csvWorkload({ input: { name: 'pixels', columns: ['a', 'b', 'c'] } }), csvOf(inputs(2)),
      "the model has no input named 'pixels' (its inputs: x)"],
    ['a slice shorter than the shard', csvWorkload(), '0,1,2,3,x\n', "the data slice holds 1, not 2 rows, the shard's rows [100, 102)"]
  ])('fails for good on %s, naming it', async (_what, workload, text, problem) => {
    const data = await slice(text)
    const failure = await failureOf(start().run(onnxTask({ model: twoModel, data }, workload, { index: 9, start: 100, end: 102 }), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toContain('shard 9 of campaign c-test (attempt 1): ')
    expect(failure.message).toContain(problem)
  })

  it('fails for good on a JSONL value that is not a number', async () => {
    const data = await slice('{"a": 1, "b": 2, "c": 3}\n{"a": 1, "b": "2", "c": 3}\n')
    const workload = { data: { blob: { hash: '0'.repeat(64), size: 0, name: 'd.jsonl' }, format: 'jsonl' as const, rows: 2 }, input: { columns: ['a', 'b', 'c'] } }
    const failure = await failureOf(start().run(onnxTask({ model: twoModel, data }, workload, { start: 0, end: 2 }), recordingContext()))
    expect(failure.message).toContain("row 1, column 'b' is \"2\", not a number")
  })

  it('fails for good on a model file it cannot load', async () => {
    const failure = await failureOf(start().run(onnxTask({ model: await slice('not a model'), data: await slice(csvOf(inputs(1))) }, csvWorkload(), { start: 0, end: 1 }), recordingContext()))
    expect(failure.retryable).toBe(false)
    expect(failure.message).toMatch(/cannot load the model .*: cpu: /)
  })

  it('rejects a cancelled shard with the abort reason, and keeps its thread: the thread stopped by itself', async () => {
    const r = start({ slots: 1 }, { abortGraceMs: 60_000 })
    const controller = new AbortController()
    const reason = new Error('cancelled')
    const ctx = recordingContext(controller.signal, () => { controller.abort(reason) })
    const data = await slice(csvOf(inputs(100)))
    await expect(r.run(onnxTask({ model: twoModel, data }, csvWorkload({ batchSize: 10 }), { start: 0, end: 100 }), ctx)).rejects.toBe(reason)
    // what the thread reports after the abort does not reach the caller
    expect(ctx.progressReports).toEqual([0.1])
    expectRows((await r.run(onnxTask({ model: twoModel, data }, csvWorkload(), { start: 0, end: 100 }), recordingContext())).rows, TWO, inputs(100), 0)
    expect(r.stats()).toMatchObject({ threadsStarted: 1, threadsAlive: 1 })
  })

  it('checks between batches whether the shard was cancelled (in its thread)', async () => {
    const session = await ort.InferenceSession.create(twoModel)
    try {
      const controller = new AbortController()
      const reported: number[] = []
      const request: RunRequest = {
        type: 'run',
        id: 1,
        workload: onnxTask({ model: twoModel, data: '' }, csvWorkload({ batchSize: 10 }), { start: 0, end: 100 }).workload as RunRequest['workload'],
        data: { path: await slice(csvOf(inputs(100))) },
        firstRow: 0,
        rows: 100
      }
      const progress = (fraction: number): void => {
        reported.push(fraction)
        controller.abort()
      }
      await expect(inferShard(session, request, controller.signal, progress)).rejects.toMatchObject({ name: 'AbortError' })
      expect(reported).toEqual([0.1])
    } finally {
      await session.release()
    }
  })

  it('fails only the shard whose thread dies under it, retryably, and starts a new thread in its place', async () => {
    const r = start({ slots: 2 })
    const big = await slice(csvOf(inputs(40_000)))
    // the thread each run request went to, found by the request's first row
    const posts = vi.spyOn(Worker.prototype, 'postMessage')
    const threadOf = (firstRow: number): Worker | undefined => {
      const at = posts.mock.calls.findIndex(([message]) => (message as Partial<RunRequest>).type === 'run' && (message as RunRequest).firstRow === firstRow)
      return at < 0 ? undefined : posts.mock.contexts[at] as Worker
    }
    // the thread exits by itself mid-shard, as one would on an uncaught error; not terminate(),
    // which aborts the whole process when the thread is inside an ORT call
    const crash = (): void => { threadOf(0)?.postMessage({ type: 'exit' }) }
    try {
      const doomed = r.run(onnxTask({ model: twoModel, data: big }, csvWorkload({ batchSize: 10 }), { start: 0, end: 40_000 }), recordingContext(undefined, crash))
      const survivor = r.run(onnxTask({ model: twoModel, data: big }, csvWorkload({ batchSize: 1000 }), { start: 100_000, end: 140_000 }), recordingContext())
      const failure = await failureOf(doomed)
      expect(failure.retryable).toBe(true)
      expect(failure.message).toBe('shard 0 of campaign c-test (attempt 1): its ONNX worker thread ended unexpectedly (exit code 0)')
      expectRows((await survivor).rows, TWO, inputs(40_000), 100_000)
    } finally {
      posts.mockRestore()
    }
    const small = await slice(csvOf(inputs(5)))
    const task = onnxTask({ model: twoModel, data: small }, csvWorkload(), { start: 0, end: 5 })
    for (const { rows } of await Promise.all([r.run(task, recordingContext()), r.run(task, recordingContext())])) expectRows(rows, TWO, inputs(5), 0)
    expect(r.stats()).toMatchObject({ threadsStarted: 3, threadsAlive: 2 })
  })

  it('ends idle threads after the idle time, and all threads on close', async () => {
    const r = start({}, { idleMs: 200 })
    const data = await slice(csvOf(inputs(40_000)))
    await r.run(onnxTask({ model: twoModel, data }, csvWorkload(), { start: 0, end: 40_000 }), recordingContext())
    await waitFor(() => r.stats().threadsAlive === 0, { timeoutMs: 10_000, what: 'the idle thread to exit' })
    const started = Promise.withResolvers<void>()
    const running = r.run(onnxTask({ model: twoModel, data }, csvWorkload({ batchSize: 10 }), { start: 0, end: 40_000 }), recordingContext(undefined, () => { started.resolve() }))
    await started.promise
    await r.close()
    await expect(running).rejects.toThrow('the ONNX runner was closed while the shard ran')
    expect(r.stats().threadsAlive).toBe(0)
    await expect(r.run(onnxTask({ model: twoModel, data }, csvWorkload(), { start: 0, end: 1 }), recordingContext())).rejects.toThrow('the ONNX runner is closed')
  })
})
