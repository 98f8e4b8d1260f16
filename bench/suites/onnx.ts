import { rm } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { FEATURES, buildOnnxExample } from '../../examples/onnx-batch/build.ts'
import { prebuiltTensors, rawPipeline, writeDataSet, type OnnxIo } from '../onnx-data.ts'
import { STEPS, stepRunner, type Step } from '../onnx-steps.ts'
import { runCampaign, startMesh, type BenchMesh } from '../mesh.ts'
import { summarize } from '../stats.ts'
import type { Figure, Row, Suite, SuiteContext, SuiteOutput } from '../suite.ts'
import { WORKER_CAPABILITY } from '../worker-role.ts'

/** rows of each run's data set: several seconds of work for every case */
const ROWS = 1_000_000
/** the example's data set (buildOnnxExample's default size), repeated to make ROWS: a multiple of it */
const SAMPLE_ROWS = 20_000
/** as examples/onnx-batch/campaign.yaml */
const PER_SHARD = 2000
const IO: OnnxIo = { input: 'features', output: 'prediction', columns: Array.from({ length: FEATURES }, (_, i) => `f${i}`), batchSize: 512 }
/** counted runs, each on a fresh data set, cases in turn, after one warm-up pass over the example's data */
const RUNS = 3
const WORKERS = 2

export const onnxSuite: Suite = {
  name: 'onnx',
  title: 'ONNX batch inference: mesh vs raw ONNX Runtime (rows/s)',
  run: runOnnxSuite
}

type Case = 'raw' | 'raw1' | 'infer' | 'infer1' | 'one' | 'three' | 'three0'
const CASES: Array<{ key: Case, name: string }> = [
  { key: 'raw', name: '(a) raw pipeline, one process: CSV → worker\'s parser → batches → ORT, all cores' },
  { key: 'raw1', name: '(a1) raw pipeline, ORT on 1 intra-op thread (a mesh slot\'s session)' },
  { key: 'infer', name: '(b) raw inference only: `session.run` on pre-built tensors, all cores' },
  { key: 'infer1', name: '(b1) raw inference only, 1 intra-op thread' },
  { key: 'one', name: '(c) mesh, one node (`--slots` = cores), submit → SUCCEEDED' },
  { key: 'three', name: `(d) mesh, coordinator + ${WORKERS} workers, submit → SUCCEEDED (both workers hold checkpoint replicas: the default)` },
  { key: 'three0', name: '(d0) the same with `replicas: 0` (no checkpoint replicas)' }
]

interface Sample {
  seconds: number
  /** CPU ms of every process involved */
  cpu: number
  /** meshes: the coordinator's share of cpu, the POST, first lease → last result, and the shards' summed run time on their workers */
  coordinatorCpu?: number
  submitMs?: number
  runMs?: number
  busyMs?: number
}

async function runOnnxSuite (ctx: SuiteContext): Promise<SuiteOutput> {
  await using stack = new AsyncDisposableStack()
  const cores = availableParallelism()
  const example = await buildOnnxExample({ dir: join(ctx.tmp, 'example'), rows: SAMPLE_ROWS })
  const session = async (threads: number): Promise<ort.InferenceSession> => {
    const s = await ort.InferenceSession.create(example.model, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 })
    stack.defer(async () => { await s.release() })
    return s
  }
  const sessions = { all: await session(cores), one: await session(1) }
  ctx.progress(`starting a one-node mesh and a coordinator with ${WORKERS} workers (zp-node processes)…`)
  const one = await startMesh({ dir: join(ctx.tmp, 'one'), workers: 0, args: ['--slots', String(cores)], signal: ctx.signal }, stack)
  const three = await startMesh({ dir: join(ctx.tmp, 'three'), workers: WORKERS, signal: ctx.signal }, stack)
  const steps = await stepRunner(join(ctx.tmp, 'steps'), example.model, IO, PER_SHARD, cores, stack)
  // the example's rows are the data set's rows: inferring them ROWS / SAMPLE_ROWS times is the same computation
  const tensors = await prebuiltTensors(example.data, IO)

  const spec = (data: string, onWorkers: boolean, replicas?: number): Record<string, unknown> => ({
    name: 'bench-onnx',
    ...(replicas != null ? { replicas } : {}),
    workload: { kind: 'onnx', model: example.model, data, input: { name: IO.input, columns: IO.columns }, output: { name: IO.output, column: IO.output }, batchSize: IO.batchSize },
    shards: { rows: { perShard: PER_SHARD } },
    ...(onWorkers ? { requires: { capabilities: [WORKER_CAPABILITY] } } : {})
  })
  const mesh = async (m: BenchMesh, data: string, rows: number, replicas?: number): Promise<Sample> => {
    const t = await runCampaign(m, spec(data, m.workers.length > 0, replicas), ctx.tmp, ctx.signal)
    const expected = m.workers.length > 0 ? m.workers.map(w => w.name) : [m.coordinator.name]
    const ran = t.status.workers.map(w => w.name)
    if (ran.some(n => !expected.includes(n))) throw new Error(`shards ran on ${ran.join(', ')}, expected ${expected.join(', ')} only`)
    if (t.status.shards.done !== Math.ceil(rows / PER_SHARD)) throw new Error(`${t.status.shards.done} shards done of ${Math.ceil(rows / PER_SHARD)}`)
    return {
      seconds: t.totalMs / 1000,
      cpu: Object.values(t.cpuMs).reduce((a, b) => a + b, 0),
      coordinatorCpu: t.cpuMs[m.coordinator.name]!,
      submitMs: t.submitMs,
      runMs: t.runMs,
      busyMs: t.status.workers.reduce((sum, w) => sum + w.busyMs, 0)
    }
  }
  const inProcess = async (work: () => Promise<number>, rows: number): Promise<Sample> => {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const done = await work()
    const seconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    if (done !== rows) throw new Error(`${done} rows done of ${rows}`)
    return { seconds, cpu: (cpu.user + cpu.system) / 1000 }
  }
  const inferAll = async (s: ort.InferenceSession, rows: number): Promise<number> => {
    let done = 0
    while (done < rows) {
      for (const t of tensors) {
        await s.run({ [IO.input]: t }, [IO.output])
        done += t.dims[0]!
      }
    }
    return done
  }
  const ops: Record<Case, (data: string, rows: number) => Promise<Sample>> = {
    raw: async (data, rows) => await inProcess(async () => await rawPipeline(sessions.all, data, rows, IO), rows),
    raw1: async (data, rows) => await inProcess(async () => await rawPipeline(sessions.one, data, rows, IO), rows),
    infer: async (_, rows) => await inProcess(async () => await inferAll(sessions.all, rows), rows),
    infer1: async (_, rows) => await inProcess(async () => await inferAll(sessions.one, rows), rows),
    one: async (data, rows) => await mesh(one, data, rows),
    three: async (data, rows) => await mesh(three, data, rows),
    three0: async (data, rows) => await mesh(three, data, rows, 0)
  }

  ctx.progress(`warm-up: the example's ${SAMPLE_ROWS} rows through every case…`)
  for (const { key } of CASES) await ops[key](example.data, SAMPLE_ROWS)
  await steps.measure(example.data, SAMPLE_ROWS)
  const samples: Record<Case, Sample[]> = { raw: [], raw1: [], infer: [], infer1: [], one: [], three: [], three0: [] }
  const stepSeconds = Object.fromEntries(STEPS.map(s => [s.key, [] as number[]])) as Record<Step, number[]>
  for (let run = 1; run <= RUNS; run++) {
    const data = join(ctx.tmp, `data-${run}.csv`)
    const bytes = await writeDataSet(example.data, data, ROWS, run * ROWS)
    ctx.progress(`run ${run}/${RUNS}: ${ROWS.toLocaleString('en-US')} rows (${Math.round(bytes / 1e6)} MB of CSV) through every case…`)
    for (const { key } of CASES) {
      ctx.signal.throwIfAborted()
      if (key === 'three0') {
        // its own bytes: the workers must not find the data set (or its slices) already fetched by (d)'s run
        const own = join(ctx.tmp, `data-${run}-d0.csv`)
        await writeDataSet(example.data, own, ROWS, (RUNS + run) * ROWS)
        samples[key].push(await ops[key](own, ROWS))
        await rm(own)
        continue
      }
      samples[key].push(await ops[key](data, ROWS))
    }
    ctx.progress(`run ${run}/${RUNS}: the one-node mesh's steps alone…`)
    for (const [step, seconds] of Object.entries(await steps.measure(data, ROWS))) stepSeconds[step as Step].push(seconds)
    // the meshes keep their own copies in their blob stores
    await rm(data)
  }

  const rows = [
    ...CASES.map(({ key, name }) => caseRow(name, samples[key], key === 'raw' ? undefined : samples.raw)),
    ...STEPS.map(({ key, name }) => stepRow(`(c) step alone: ${name}`, stepSeconds[key], samples.raw))
  ]
  for (const row of rows) ctx.progress(describe(row))
  return {
    method: `Model and data from \`buildOnnxExample\` (examples/onnx-batch): the MLP ${FEATURES} → 64 tanh → 1, and its ${SAMPLE_ROWS.toLocaleString('en-US')}-row CSV (id, f0…f31, expected) repeated to ${ROWS.toLocaleString('en-US')} rows per run, ids renumbered so every run's bytes (and blobs) are new ((d0) gets its own renumbered copy, so it cannot read what (d)'s replicas fetched). ` +
      `Campaign as examples/onnx-batch/campaign.yaml without the reference check: \`batchSize: ${IO.batchSize}\`, \`shards: { rows: { perShard: ${PER_SHARD} } }\` (${ROWS / PER_SHARD} shards), submitted as JSON to the coordinator's \`POST /v1/campaigns\`; ` +
      'time from just before the POST (which scans the data set and stores it as a blob) to the coordinator\'s `endedAt` (SUCCEEDED: every result stored in its LevelDB); the export is not part of it. ' +
      `Mesh nodes are \`zp-node\` processes (LocalNode) with \`--no-onnx-probe\` (ORT's CPU provider); (d)'s campaign requires a capability only the workers advertise (bench/worker-role.ts), so its coordinator runs no shards, and has the default 2 replicas, so both workers also receive every result and fetch the whole data set in the background (what a replica needs to take over); (d0) is the same campaign with \`replicas: 0\`; the workers have the default slots (${cores}). ` +
      `Raw rows run in the bench process: (a) reads the same CSV through the worker's CsvCursor in 64 KiB chunks, fills float32 batches of ${IO.batchSize}, \`session.run\` (CPU provider, intraOpNumThreads ${cores}), keeps every prediction; (b) is \`session.run\` alone over tensors built beforehand. ` +
      `One warm-up pass of the example's rows through every case (ORT sessions created, the model fetched), then ${RUNS} runs of every case in turn; rows/s is the median run's; mesh/raw is the median of each run's ratio to (a) in the same run. CPU: user + system time of every process involved (from /proc for nodes). ` +
      '"(c) step alone" rows: the one-node mesh\'s work split into its steps, each alone in the bench process with the product\'s own code (bench/onnx-steps.ts), over the same run\'s data, timed against (a) of that run; ' +
      'the runner step is the worker\'s counterpart of (a) (parse and infer, in worker threads), the others are work (a) does not do: the one read of the data set at submit that indexes it, hashes each shard\'s slice and copies it into the blob store, and storing the results. In a node they overlap rather than add up.',
    parameters: {
      rows: ROWS,
      sampleRows: SAMPLE_ROWS,
      hidden: example.hidden,
      batchSize: IO.batchSize,
      rowsPerShard: PER_SHARD,
      runs: RUNS,
      cores,
      meshSessionThreads: 'intraOpNumThreads = max(1, floor(cores / slots)) (actors/worker/runners/onnx-runner.ts)',
      nodeFlags: `--no-onnx-probe; one node: --slots ${cores}; workers: --probe-plugin bench/worker-role.ts`
    },
    columns: [
      { label: 'rows/s', figure: 'rate' },
      { label: 'min rows/s', figure: 'rate', stat: 'min' },
      { label: 'max rows/s', figure: 'rate', stat: 'max' },
      { label: 'rows/s ÷ (a)', figure: 'vsRaw' },
      { label: 'time (ms)', figure: 'time' },
      { label: 'step time ÷ (a)', figure: 'ofRaw' },
      { label: 'submit (ms)', figure: 'submit' },
      { label: 'first lease → done (ms)', figure: 'run' },
      { label: 'CPU, all processes (ms)', figure: 'cpu' },
      { label: 'coordinator CPU (ms)', figure: 'coordinatorCpu' }
    ],
    rows,
    notes: [
      'A mesh node runs each ONNX shard in a worker thread (one ORT session per thread, one intra-op thread each when slots = cores): slices are parsed and inferred on as many cores as it has slots, and its event loop stays free for the mesh. The submit phase reads the data set once, scanning it, hashing every shard\'s slice and copying it into the blob store; that copy (content-addressed, so workers can fetch and verify it) is most of what the one-node mesh spends beyond the raw pipeline.'
    ]
  }
}

function caseRow (name: string, samples: Sample[], raw: Sample[] | undefined): Row {
  const median = (pick: (s: Sample) => number | undefined, unit: string): Figure | undefined => {
    const values = samples.map(pick).filter((v): v is number => v != null)
    return values.length === 0 ? undefined : { value: summarize(values).p50, unit, samples: values.map(v => Number(v.toPrecision(4))) }
  }
  const figures: Record<string, Figure | undefined> = {
    rate: rateFigure(samples.map(s => s.seconds)),
    time: median(s => s.seconds * 1000, 'ms'),
    vsRaw: raw == null ? undefined : median(s => (raw[samples.indexOf(s)]!.seconds / s.seconds), 'ratio'),
    submit: median(s => s.submitMs, 'ms'),
    run: median(s => s.runMs, 'ms'),
    busy: median(s => s.busyMs, 'ms'),
    cpu: median(s => s.cpu, 'ms'),
    coordinatorCpu: median(s => s.coordinatorCpu, 'ms')
  }
  return { name, figures: Object.fromEntries(Object.entries(figures).filter((e): e is [string, Figure] => e[1] != null)) }
}

function stepRow (name: string, seconds: number[], raw: Sample[]): Row {
  const ofRaw = seconds.map((s, i) => s / raw[i]!.seconds)
  return {
    name,
    figures: {
      rate: rateFigure(seconds),
      time: { value: summarize(seconds).p50 * 1000, unit: 'ms', samples: seconds.map(s => Math.round(s * 1000)) },
      ofRaw: { value: summarize(ofRaw).p50, unit: 'ratio', samples: ofRaw.map(r => Number(r.toPrecision(3))) }
    }
  }
}

function rateFigure (seconds: number[]): Figure {
  const rates = seconds.map(s => ROWS / s)
  return { value: summarize(rates).p50, unit: 'rows/s', stats: summarize(rates), samples: rates.map(r => Math.round(r)) }
}

function describe (row: Row): string {
  const { rate, time, vsRaw, ofRaw, submit, run, busy, cpu } = row.figures
  return `${row.name}: ${Math.round(rate!.value).toLocaleString('en-US')} rows/s (runs: ${rate!.samples!.join(', ')}), ${Math.round(time!.value)} ms` +
    (vsRaw != null ? `, ${vsRaw.value.toFixed(2)}× (a)'s rows/s (runs: ${vsRaw.samples!.join(', ')})` : '') +
    (ofRaw != null ? `, ${ofRaw.value.toFixed(2)}× (a)'s time (runs: ${ofRaw.samples!.join(', ')})` : '') +
    (submit != null ? `, submit ${Math.round(submit.value)} ms, run ${Math.round(run!.value)} ms, shards busy ${Math.round(busy!.value)} ms` : '') +
    (cpu != null ? `, CPU ${Math.round(cpu.value)} ms` : '')
}
