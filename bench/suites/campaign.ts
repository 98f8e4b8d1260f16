import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createModuleRunner } from '../../actors/worker/runners/module-runner.ts'
import { moduleTask, recordingContext, runnerEnv } from '../../test/fixtures/runners/tasks.ts'
import { daskVersion, startDask } from '../dask.ts'
import { processCpuMs, runCampaign, startMesh, type BenchMesh } from '../mesh.ts'
import { summarize } from '../stats.ts'
import type { Figure, Row, Suite, SuiteContext, SuiteOutput } from '../suite.ts'
import { WORKER_CAPABILITY } from '../worker-role.ts'

const NOOP = fileURLToPath(new URL('../../test/fixtures/campaigns/noop.mjs', import.meta.url))
/** shards (Dask: tasks) per counted run: about 10 s of the mesh on a 2-core box */
const SHARDS = 7500
/** counted runs per case, cases alternating, after one warm-up run of WARMUP_SHARDS */
const RUNS = 3
const WARMUP_SHARDS = 300
const WORKERS = 2
/** per worker, like Dask's single-threaded workers */
const WORKER_SLOTS = 1
const DASK_MISSING = 'python3-distributed not installed'
/** checkpoint replicas per case: the default (2), one, and none (no replication, no fencing) */
const REPLICAS = [2, 1, 0] as const

export const campaignSuite: Suite = {
  name: 'campaign',
  title: 'No-op shards per second: mesh (coordinator + 2 workers, checkpoints replicated to 2, 1, 0 peers) vs Dask',
  run: runCampaignSuite
}

/** One case's counted runs: wall time, and CPU time of the coordinating process and of the workers. */
interface Runs {
  seconds: number[]
  coordinatorCpuMs: number[]
  workerCpuMs: number[]
  /** the mesh only: the POST /v1/campaigns call */
  submitMs: number[]
}

const emptyRuns = (): Runs => ({ seconds: [], coordinatorCpuMs: [], workerCpuMs: [], submitMs: [] })

async function runCampaignSuite (ctx: SuiteContext): Promise<SuiteOutput> {
  await using stack = new AsyncDisposableStack()
  ctx.progress(`starting a coordinator and ${WORKERS} workers (zp-node processes)…`)
  const mesh = await startMesh({ dir: join(ctx.tmp, 'mesh'), workers: WORKERS, workerArgs: ['--slots', String(WORKER_SLOTS)], signal: ctx.signal }, stack)
  const version = daskVersion()
  if (version != null) ctx.progress(`starting a Dask scheduler, ${WORKERS} workers and a client…`)
  const dask = version != null ? await startDask(join(ctx.tmp, 'dask'), WORKERS, stack, ctx.signal) : undefined

  const spec = (shards: number, replicas: number): Record<string, unknown> => ({
    name: 'bench-noop',
    replicas,
    workload: { kind: 'module', module: NOOP },
    shards: { iterations: { total: shards, perShard: 1, seed: 1 } },
    requires: { capabilities: [WORKER_CAPABILITY] }
  })
  const meshRun = async (shards: number, replicas: number, runs: Runs | undefined): Promise<void> => {
    const t = await runCampaign(mesh, spec(shards, replicas), ctx.tmp, ctx.signal)
    if (!sameWorkers(mesh, t.status.workers.map(w => w.name))) throw new Error(`shards ran on ${t.status.workers.map(w => w.name).join(', ')}, not on the ${WORKERS} workers alone`)
    runs?.seconds.push(t.totalMs / 1000)
    runs?.coordinatorCpuMs.push(t.cpuMs.coordinator!)
    runs?.workerCpuMs.push(mesh.workers.reduce((sum, w) => sum + t.cpuMs[w.name]!, 0))
    runs?.submitMs.push(t.submitMs)
  }
  const daskRun = async (tasks: number, runs: Runs | undefined): Promise<void> => {
    const { pids } = dask!
    // the client builds and sends the tasks: coordinating work, which a zp-node coordinator does itself
    const coordinating = [pids.scheduler, pids.client]
    const cpu = async (pidList: number[]): Promise<number> => (await Promise.all(pidList.map(processCpuMs))).reduce((a, b) => a + b, 0)
    const before = await Promise.all([cpu(coordinating), cpu(pids.workers)])
    const seconds = await dask!.run(tasks, ctx.signal)
    const after = await Promise.all([cpu(coordinating), cpu(pids.workers)])
    runs?.seconds.push(seconds)
    runs?.coordinatorCpuMs.push(after[0] - before[0])
    runs?.workerCpuMs.push(after[1] - before[1])
  }

  // warm: module threads started and imported on both workers, Dask's connections and function cache
  await meshRun(WARMUP_SHARDS, 2, undefined)
  if (dask != null) await daskRun(WARMUP_SHARDS, undefined)
  const byReplicas = new Map<number, Runs>(REPLICAS.map(r => [r, emptyRuns()]))
  const daskRuns = emptyRuns()
  for (let run = 1; run <= RUNS; run++) {
    ctx.progress(`run ${run}/${RUNS}: ${SHARDS} shards through the mesh with ${REPLICAS.join(', ')} replicas${dask != null ? ', then as many Dask tasks' : ''}…`)
    for (const r of REPLICAS) await meshRun(SHARDS, r, byReplicas.get(r))
    if (dask != null) await daskRun(SHARDS, daskRuns)
  }
  ctx.progress('module runner alone…')
  const runner = await runnerAlone()

  const meshRuns = byReplicas.get(2)!
  const meshRow = caseRow(`mesh: coordinator + ${WORKERS} workers (${WORKER_SLOTS} slot each), submit → SUCCEEDED, replicas: 2 (default)`, meshRuns)
  const noReplicas = byReplicas.get(0)!
  const otherRows = [1, 0].map(r => caseRow(`mesh, replicas: ${r}${r === 0 ? ' (no replication, no fencing)' : ''}`, byReplicas.get(r)!))
  // run by run, against the run without replication right after it
  for (const [row, r] of [[meshRow, 2], [otherRows[0]!, 1]] as const) {
    const ratios = byReplicas.get(r)!.seconds.map((s, i) => noReplicas.seconds[i]! / s)
    row.figures.vsNoReplicas = { value: summarize(ratios).p50, unit: 'ratio', samples: ratios.map(x => Number(x.toPrecision(3))) }
  }
  const rows: Row[] = [meshRow, ...otherRows]
  if (dask != null) {
    const daskRow = caseRow(`Dask ${version}: scheduler + ${WORKERS} workers × 1 thread, \`client.map\` + gather`, daskRuns)
    // run by run: each mesh run is paired with the Dask run right after it
    const ratios = meshRuns.seconds.map((s, i) => daskRuns.seconds[i]! / s)
    meshRow.figures.vsDask = { value: summarize(ratios).p50, unit: 'ratio', samples: ratios.map(r => Number(r.toPrecision(3))) }
    rows.push(daskRow)
  } else {
    rows.push({ name: `Dask: skipped: ${DASK_MISSING}`, figures: {} })
  }
  rows.push(...runner)
  for (const row of rows) ctx.progress(describe(row))
  return {
    method: `Every process on this machine, loopback TCP. Mesh: three \`zp-node\` processes (LocalNode): a coordinator and ${WORKERS} workers joined through it, each worker \`--slots ${WORKER_SLOTS}\`; ` +
      'the campaign requires a capability only the workers advertise (a probe plugin, bench/worker-role.ts), so the coordinator runs no shards (`--slots` takes no 0). ' +
      `Campaign: the module workload test/fixtures/campaigns/noop.mjs (returns one tiny row), \`shards: { iterations: { total: ${SHARDS}, perShard: 1 } }\`, submitted as JSON to the coordinator's \`POST /v1/campaigns\`; ` +
      'time from just before the POST to the coordinator\'s `endedAt` (SUCCEEDED: every result stored in its LevelDB), status polled through the API. ' +
      `Dask: \`dask scheduler\` + ${WORKERS} × \`dask worker --nthreads 1 --no-nanny\` + a client process (bench/dask-noop.py), \`client.map\` of a no-op over ${SHARDS} items, \`gather\`, timed by the client. ` +
      `Replicas: the campaign's \`replicas\` (checkpoints streamed to that many workers, which also run shards; a result is acknowledged once a replica confirmed it; 0: none, and no fencing); each counted run runs the mesh with ${REPLICAS.join(', ')} replicas in a row, then Dask. ` +
      `One warm-up run of ${WARMUP_SHARDS} each, then ${RUNS} counted runs, mesh and Dask alternating; shards/s is the median run's, mesh / Dask the median of each run's ratio. ` +
      'CPU per shard: user + system time, from /proc, over a run, divided by the shards: of the coordinating processes (the coordinator node; Dask\'s scheduler and client, which builds and sends the tasks) and of all workers together. ' +
      'Module runner: `createModuleRunner` in the bench process (warm thread pool), the same module, no mesh: the ceiling of the worker side.',
    parameters: {
      shards: SHARDS,
      runs: RUNS,
      warmupShards: WARMUP_SHARDS,
      workers: WORKERS,
      workerSlots: WORKER_SLOTS,
      module: 'test/fixtures/campaigns/noop.mjs',
      nodeFlags: '--no-onnx-probe; workers: --probe-plugin bench/worker-role.ts --slots 1',
      dask: version != null ? `Debian python3-distributed ${version}, /usr/bin/python3` : DASK_MISSING
    },
    columns: [
      { label: 'shards/s', figure: 'rate' },
      { label: 'min shards/s', figure: 'rate', stat: 'min' },
      { label: 'max shards/s', figure: 'rate', stat: 'max' },
      { label: 'coordinating CPU per shard (µs)', figure: 'coordinatorCpu' },
      { label: 'workers\' CPU per shard (µs)', figure: 'workerCpu' },
      { label: 'submit (ms)', figure: 'submit' },
      { label: 'vs replicas: 0', figure: 'vsNoReplicas' },
      { label: 'mesh / Dask', figure: 'vsDask' }
    ],
    rows,
    notes: [
      'On a 2-core box the three nodes (or Dask\'s scheduler, workers and client) share two cores: shards/s is bounded by the CPU all processes spend per shard, which the CPU columns split up.'
    ]
  }
}

function sameWorkers (mesh: BenchMesh, names: string[]): boolean {
  return names.length === mesh.workers.length && mesh.workers.every(w => names.includes(w.name))
}

/** The module runner in this process, warm, with 1 and with WORKERS shards in flight. */
async function runnerAlone (): Promise<Row[]> {
  const rows: Row[] = []
  for (const inFlight of [1, WORKERS]) {
    const runner = createModuleRunner(runnerEnv({ slots: inFlight }))
    try {
      const task = moduleTask(NOOP)
      const ctx = recordingContext()
      const burst = async (n: number): Promise<number> => {
        let next = 0
        const t0 = performance.now()
        await Promise.all(Array.from({ length: inFlight }, async () => {
          while (next++ < n) await runner.run(task, ctx)
        }))
        return (performance.now() - t0) / 1000
      }
      await burst(WARMUP_SHARDS)
      const seconds: number[] = []
      for (let run = 0; run < RUNS; run++) seconds.push(await burst(SHARDS))
      rows.push({ name: `module runner alone, in-process, warm pool, ${inFlight} in flight`, figures: { rate: rateFigure(SHARDS, seconds) } })
    } finally {
      await runner.close()
    }
  }
  return rows
}

function caseRow (name: string, runs: Runs): Row {
  const rate = rateFigure(SHARDS, runs.seconds)
  const perShard = (ms: number[]): Figure => ({ value: summarize(ms).p50 * 1000 / SHARDS, unit: 'µs', samples: ms.map(v => Math.round(v * 1000 / SHARDS)) })
  return {
    name,
    figures: {
      rate,
      coordinatorCpu: perShard(runs.coordinatorCpuMs),
      workerCpu: perShard(runs.workerCpuMs),
      ...(runs.submitMs.length > 0 ? { submit: { value: summarize(runs.submitMs).p50, unit: 'ms', samples: runs.submitMs } } : {})
    }
  }
}

function rateFigure (shards: number, seconds: number[]): Figure {
  const rates = seconds.map(s => shards / s)
  return { value: summarize(rates).p50, unit: 'shards/s', stats: summarize(rates), samples: rates.map(r => Math.round(r)) }
}

function describe (row: Row): string {
  const { rate, coordinatorCpu, workerCpu } = row.figures
  if (rate == null) return row.name
  return `${row.name}: ${Math.round(rate.value)} shards/s (runs: ${rate.samples!.join(', ')})` +
    (coordinatorCpu != null ? `, CPU per shard ${Math.round(coordinatorCpu.value)} µs coordinating, ${Math.round(workerCpu!.value)} µs in workers` : '')
}
