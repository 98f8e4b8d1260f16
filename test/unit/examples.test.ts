import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import ort from 'onnxruntime-node'
import { ShardPlan } from '../../actors/coordinator/plan.ts'
import { createExecRunner } from '../../actors/worker/runners/exec-runner.ts'
import { createModuleRunner } from '../../actors/worker/runners/module-runner.ts'
import { loadCampaignFile, type LoadedCampaign } from '../../node/campaign/load.ts'
import { loadExecConfig, parseExecConfig } from '../../node/exec-config.ts'
import type { Shard } from '../../protocols/campaign/shard.ts'
import { EXEC_COMMAND, EXEC_PROGRAM, execExampleConfig, execExampleTemplates } from '../../examples/exec/config.ts'
import { blackScholes, estimate, optionParams, type ShardRow } from '../../examples/monte-carlo/pricing.ts'
import { buildOnnxExample, FEATURES, type OnnxExample } from '../../examples/onnx-batch/build.ts'
import { execTask, moduleTask, recordingContext, runnerEnv } from '../fixtures/runners/tasks.ts'
import { tempDir } from '../helpers.ts'

const EXAMPLES = resolve(import.meta.dirname, '../../examples')
const example = (path: string): string => join(EXAMPLES, path)

/** The campaign modules are plain ES modules for worker threads; this is the shape the tests call. */
interface CampaignModule {
  run: (shard: Shard, ctx: ReturnType<typeof moduleCtx>) => Promise<unknown>
}

async function importModule (path: string): Promise<CampaignModule> {
  return await import(pathToFileURL(path).href) as CampaignModule
}

/** What the module runner's worker thread hands run(); progress reports recorded. */
function moduleCtx (shard: Shard, params: Record<string, unknown>, signal = new AbortController().signal) {
  const progress: number[] = []
  return { seed: shard.seed, index: shard.index, attempt: 1, campaign: 'c-test', params, signal, resumeFrom: undefined, progressReports: progress, progress: (f: number) => { progress.push(f) }, checkpoint: async () => {} }
}

function shardsOf (loaded: LoadedCampaign): Shard[] {
  const plan = new ShardPlan(loaded.sharding)
  return Array.from({ length: plan.count }, (_, i) => plan.at(i) as Shard)
}

let dir: { path: string, remove: () => Promise<void> }
let onnxExample: OnnxExample
let onnxBuildMs: number
beforeAll(async () => {
  dir = await tempDir('zp-examples-')
  const started = performance.now()
  onnxExample = await buildOnnxExample({ dir: join(dir.path, 'onnx') })
  onnxBuildMs = performance.now() - started
})
afterAll(async () => { await dir.remove() })

describe('monte-carlo example', () => {
  let loaded: LoadedCampaign
  let price: CampaignModule
  beforeAll(async () => {
    loaded = await loadCampaignFile(example('monte-carlo/campaign.yaml'))
    price = await importModule(example('monte-carlo/price.mjs'))
  })

  it('loads as a module campaign of 40 shards', () => {
    expect(loaded.spec.workload).toEqual({ kind: 'module', module: './price.mjs' })
    expect(loaded.assets.map(a => a.path)).toEqual([example('monte-carlo/price.mjs')])
    expect(shardsOf(loaded)).toHaveLength(40)
  })

  it('gives a shard the same row wherever it runs, and a different shard a different one', async () => {
    const [first, second] = shardsOf(loaded)
    const a = await price.run(first!, moduleCtx(first!, loaded.spec.params))
    expect(await price.run(first!, moduleCtx(first!, loaded.spec.params))).toEqual(a)
    expect(a).toMatchObject({ paths: 50_000 })
    expect(await price.run(second!, moduleCtx(second!, loaded.spec.params))).not.toEqual(a)
  })

  it('prices the option within 1% (and 4 standard errors) of Black–Scholes at the default size', async () => {
    const params = optionParams(loaded.spec.params)
    const rows: ShardRow[] = []
    for (const shard of shardsOf(loaded)) {
      const ctx = moduleCtx(shard, loaded.spec.params)
      rows.push(await price.run(shard, ctx) as ShardRow)
      expect(ctx.progressReports).toHaveLength(10)
      expect(ctx.progressReports.at(-1)).toBe(1)
    }
    const est = estimate(rows, params)
    const exact = blackScholes(params)
    expect(exact).toBeCloseTo(10.4506, 4)
    expect(est.paths).toBe(2_000_000)
    expect(Math.abs(est.price - exact) / exact).toBeLessThan(0.01)
    expect(Math.abs(est.price - exact)).toBeLessThan(4 * est.standardError)
  })

  it('prints the estimate from a results export', async () => {
    const shards = shardsOf(loaded).slice(0, 4)
    const lines = await Promise.all(shards.map(async s => JSON.stringify({ shard: s.index, ...await price.run(s, moduleCtx(s, loaded.spec.params)) as object })))
    const out = await runProcess(process.execPath, [example('monte-carlo/estimate.ts')], lines.join('\n') + '\n')
    expect(out.code).toBe(0)
    expect(out.stdout).toMatch(/paths +200,000 in 4 shards/)
    expect(out.stdout).toMatch(/Black–Scholes +10\.4506/)
  })

  it('refuses bad params without retries', async () => {
    const [shard] = shardsOf(loaded)
    const err = await price.run(shard!, moduleCtx(shard!, { ...loaded.spec.params, volatility: -1 })).catch((e: unknown) => e)
    expect(err).toMatchObject({ message: expect.stringContaining('params.volatility'), retryable: false })
  })

  it('stops soon after a cancel when the module runner runs it in a worker thread', async () => {
    const runner = createModuleRunner(runnerEnv(), { abortGraceMs: 20_000 })
    try {
      const controller = new AbortController()
      let abortedAt = 0
      // 50 million paths take seconds; cancel at the first progress report, a tenth of the way
      const task = moduleTask(example('monte-carlo/price.mjs'), { end: 50_000_000, params: loaded.spec.params })
      const result = runner.run(task, recordingContext(controller.signal, () => {
        if (controller.signal.aborted) return
        abortedAt = performance.now()
        controller.abort()
      }))
      await expect(result).rejects.toThrow()
      // it looks at the signal every 100,000 paths (~10 ms), not every tenth of the shard
      expect(performance.now() - abortedAt).toBeLessThan(1_000)
      // the module stopped on its own: its thread was not terminated after the grace period
      expect(runner.stats()).toMatchObject({ threadsStarted: 1, threadsAlive: 1 })
    } finally {
      await runner.close()
    }
  })
})

describe('sweep example', () => {
  let loaded: LoadedCampaign
  let rlc: CampaignModule
  beforeAll(async () => {
    loaded = await loadCampaignFile(example('sweep/campaign.yaml'))
    rlc = await importModule(example('sweep/rlc-step.mjs'))
  })

  it('loads as a grid of 81 circuits in 17 shards', () => {
    const plan = new ShardPlan(loaded.sharding)
    expect(plan.items).toBe(81)
    expect(plan.count).toBe(17)
  })

  it('matches the closed-form overshoot of every underdamped circuit, deterministically', async () => {
    type Row = { zeta: number, overshootPercent: number, peakTime: number | null, riseTime: number | null, settlingTime: number | null, resistance: number }
    const rows: Row[] = []
    for (const shard of shardsOf(loaded)) rows.push(...await rlc.run(shard, moduleCtx(shard, loaded.spec.params)) as Row[])
    expect(rows).toHaveLength(81)
    for (const row of rows) {
      expect(row.riseTime).toBeGreaterThan(0)
      expect(row.settlingTime).toBeGreaterThan(0)
      if (row.zeta < 1) {
        const theory = 100 * Math.exp(-Math.PI * row.zeta / Math.sqrt(1 - row.zeta ** 2))
        expect(Math.abs(row.overshootPercent - theory)).toBeLessThan(0.01)
        expect(row.peakTime).toBeGreaterThan(0)
      } else {
        expect(row.overshootPercent).toBe(0)
        expect(row.peakTime).toBeNull()
      }
    }
    const [shard] = shardsOf(loaded)
    expect(await rlc.run(shard!, moduleCtx(shard!, loaded.spec.params))).toEqual(rows.slice(0, 5))
  })

  it('refuses a grid point that would take too many steps, without retries', async () => {
    const [shard] = shardsOf(loaded)
    const err = await rlc.run(shard!, moduleCtx(shard!, { ...loaded.spec.params, maxSteps: 1000 })).catch((e: unknown) => e)
    expect(err).toMatchObject({ message: expect.stringContaining('maxSteps'), retryable: false })
  })
})

describe('exec example', () => {
  let loaded: LoadedCampaign
  beforeAll(async () => { loaded = await loadCampaignFile(example('exec/campaign.yaml')) })

  it('loads as an exec campaign that requires the rlc-tolerance command', () => {
    expect(loaded.spec.workload).toEqual({ kind: 'exec', command: EXEC_COMMAND })
    expect(loaded.requires.capabilities).toContain(`exec.${EXEC_COMMAND}`)
    expect(shardsOf(loaded)).toHaveLength(20)
  })

  it('ships a valid sample exec config and writes a ready one with this checkout\'s paths', async () => {
    const sample = parseExecConfig(await readFile(example('exec/exec-config.yaml'), 'utf8'), 'exec-config.yaml')
    expect(Object.keys(sample)).toEqual([EXEC_COMMAND])
    const file = await execExampleConfig(join(dir.path, 'exec'))
    const templates = await loadExecConfig(file)
    expect(templates).toEqual(execExampleTemplates())
    expect(templates[EXEC_COMMAND]?.argv[1]).toBe(EXEC_PROGRAM)
  })

  it('runs a shard through the exec runner: one row per board, the same every time', async () => {
    const runner = createExecRunner(runnerEnv({ execTemplates: execExampleTemplates() }))
    try {
      const shard = shardsOf(loaded)[3]!
      const task = { ...execTask(EXEC_COMMAND, { params: loaded.spec.params }), shard }
      const ctx = recordingContext()
      const first = await runner.run(task, ctx)
      expect(first.rows).toHaveLength(100)
      first.rows.forEach((row, k) => {
        expect(row).toMatchObject({ board: 300 + k, pass: expect.any(Boolean) })
        expect((row as { overshootPercent: number }).overshootPercent).toBeGreaterThan(5)
        expect((row as { overshootPercent: number }).overshootPercent).toBeLessThan(30)
      })
      // rate-limited by the runner, so not every line arrives: at least the first does
      expect(ctx.progressReports[0]).toBeCloseTo(0.1)
      expect((await runner.run(task, recordingContext())).rows).toEqual(first.rows)
    } finally {
      await runner.close()
    }
  })

  it('refuses a misspelt parameter', async () => {
    const out = await runProcess(execExampleTemplates()[EXEC_COMMAND]!.argv[0]!, [EXEC_PROGRAM, '--seed', '1', '--start', '0', '--end', '1'], '', { ZP_PARAMS: '{"resistence": 5}' })
    expect(out.code).not.toBe(0)
    expect(out.stderr).toContain('unknown params: resistence')
  })

  it('ends at once on SIGTERM', async () => {
    const python = execExampleTemplates()[EXEC_COMMAND]!.argv[0]!
    const child = spawn(python, [EXEC_PROGRAM, '--seed', '1', '--start', '0', '--end', '100000000'], { stdio: ['ignore', 'pipe', 'ignore'] })
    const exited = new Promise<NodeJS.Signals | null>(resolve => child.on('exit', (_code, signal) => { resolve(signal) }))
    // the first output means it is past start-up and computing
    await new Promise(resolve => child.stdout.once('data', resolve))
    const started = performance.now()
    child.kill('SIGTERM')
    expect(await exited).toBe('SIGTERM')
    expect(performance.now() - started).toBeLessThan(1_000)
  })
})

describe('onnx-batch example', () => {
  it('builds 20,000 rows quickly, with the campaign beside them', async () => {
    expect(onnxBuildMs).toBeLessThan(5_000)
    const loaded = await loadCampaignFile(onnxExample.campaign)
    expect(loaded.data?.rows).toBe(20_000)
    expect(new ShardPlan(loaded.sharding, { rows: loaded.data!.rows, offsets: loaded.data!.offsets }).count).toBe(10)
    const w = loaded.spec.workload
    expect(w.kind === 'onnx' ? w.input.columns : []).toEqual(Array.from({ length: FEATURES }, (_, i) => `f${i}`))
  })

  it('matches the plain-JS reference within the campaign tolerance on every row with ONNX Runtime', async () => {
    const lines = (await readFile(onnxExample.data, 'utf8')).trimEnd().split('\n')
    expect(lines[0]).toBe(['id', ...Array.from({ length: FEATURES }, (_, i) => `f${i}`), 'expected'].join(','))
    const rows = lines.length - 1
    const features = new Float32Array(rows * FEATURES)
    const expected = new Float64Array(rows)
    for (let r = 0; r < rows; r++) {
      const fields = lines[r + 1]!.split(',')
      for (let i = 0; i < FEATURES; i++) features[r * FEATURES + i] = Number(fields[i + 1])
      expected[r] = Number(fields[FEATURES + 1])
    }
    const session = await ort.InferenceSession.create(onnxExample.model)
    try {
      const out = await session.run({ features: new ort.Tensor('float32', features, [rows, FEATURES]) })
      const predictions = out.prediction!.data as Float32Array
      expect(predictions).toHaveLength(rows)
      let maxError = 0
      for (let r = 0; r < rows; r++) maxError = Math.max(maxError, Math.abs(predictions[r]! - expected[r]!))
      // measured ~6e-7 (float32 accumulation order, MLAS tanh); the campaign allows 1e-4
      expect(maxError).toBeLessThan(1e-5)
      // a model that ignored its input would pass too: the outputs must vary
      expect(Math.max(...expected) - Math.min(...expected)).toBeGreaterThan(1)
    } finally {
      await session.release()
    }
  })

  it('builds the same files from the same seed', async () => {
    const again = await buildOnnxExample({ dir: join(dir.path, 'onnx-again'), rows: 100 })
    const small = await buildOnnxExample({ dir: join(dir.path, 'onnx-small'), rows: 100 })
    expect(await readFile(again.model)).toEqual(await readFile(onnxExample.model))
    expect(await readFile(small.data, 'utf8')).toBe(await readFile(again.data, 'utf8'))
  })
})

async function runProcess (command: string, args: string[], input: string, env: Record<string, string> = {}): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdin.end(input)
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stdout, stderr }
}
