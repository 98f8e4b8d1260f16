import { spawnSync } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import type { LocalNode } from '../../bootstrap/local.ts'
import { ApiClient, resolveApiTarget } from '../../node/api/client.ts'
import { blackScholes, estimate, optionParams } from '../../examples/monte-carlo/pricing.ts'
import { startDask } from '../../test/clusters/dask.ts'
import { releaseSlurm, RUN_ENV, startSlurm } from '../../test/clusters/slurm.ts'
import { bridgeDown, timeBridgeUp, type UpSample } from '../bridge-up.ts'
import { daskBridgeUp, meshPrice, nativePrice, planShards, sameRows, type Size } from '../bridge-compare.ts'
import { startDaskPrice, type NativeMode } from '../dask-price.ts'
import { spawnNode } from '../mesh.ts'
import { summarize } from '../stats.ts'
import type { Figure, Row, Suite, SuiteContext, SuiteOutput } from '../suite.ts'

const EXAMPLE_DIR = fileURLToPath(new URL('../../examples/monte-carlo/', import.meta.url))
/** Dask workers (1 thread each), hence bridged nodes (1 slot each) */
const WORKERS = 2
/** `up` → first shard, per engine; each run's allocation is brought down before the next */
const UP_RUNS = 5
/** the example's 40 shards of 50,000 paths (~6 ms of JS each: overhead-bound), and 20× the paths per shard (~0.12 s each) */
const SIZES: Size[] = [{ shards: 40, perShard: 50_000 }, { shards: 40, perShard: 1_000_000 }]
/** counted runs per case, all cases of a run back to back, after one warm-up run of each case at the first size */
const RUNS = 3
const MODES: Array<{ mode: NativeMode, name: string }> = [
  { mode: 'spawn', name: 'native Dask tasks, each starting Node on price.mjs for its shard (a process start per task)' },
  { mode: 'warm', name: 'native Dask tasks, each worker feeding its shards to one long-lived Node process on price.mjs' },
  { mode: 'numpy', name: 'native Dask tasks, the same simulation in numpy (its own generator)' }
]

export const bridgeSuite: Suite = {
  name: 'bridge',
  title: 'Bridges: `zp bridge … up` to the first shard (Slurm, Dask); the Monte Carlo campaign on 2 Dask-bridged nodes vs native Dask tasks',
  run: runBridgeSuite
}

interface Example {
  spec: Record<string, unknown>
  params: Record<string, unknown>
  seed: number
}

async function loadExample (): Promise<Example> {
  const spec = parse(await readFile(join(EXAMPLE_DIR, 'campaign.yaml'), 'utf8')) as Record<string, unknown> & { params: Record<string, unknown>, shards: { iterations: { seed: number } } }
  return { spec, params: spec.params, seed: spec.shards.iterations.seed }
}

/** The example campaign at `size`, leased only to nodes labelled bridge=`engine`. */
function campaignSpec (example: Example, size: Size, engine: 'slurm' | 'dask'): Record<string, unknown> {
  return {
    ...example.spec,
    name: `bench-monte-carlo-${engine}`,
    shards: { iterations: { total: size.shards * size.perShard, perShard: size.perShard, seed: example.seed } },
    requires: { labels: { bridge: engine } }
  }
}

async function runBridgeSuite (ctx: SuiteContext): Promise<SuiteOutput> {
  await using stack = new AsyncDisposableStack()
  const example = await loadExample()
  const notes: string[] = []

  // the bench takes part in the Slurm test cluster's sharing as a run of its own: a vitest run using the cluster keeps it up, and the last one out stops it
  const run = String(process.pid)
  const previousRun = process.env[RUN_ENV]
  process.env[RUN_ENV] = run
  ctx.progress('starting the Slurm test cluster (test/clusters/slurm.ts)…')
  const slurm = await startSlurm().finally(() => { if (previousRun == null) delete process.env[RUN_ENV]; else process.env[RUN_ENV] = previousRun })
  let slurmUp = !('skip' in slurm)
  const stopSlurm = async (): Promise<void> => {
    if (!slurmUp) return
    slurmUp = false
    await releaseSlurm(run)
  }
  stack.defer(stopSlurm)
  ctx.progress(`starting a Dask scheduler and ${WORKERS} workers (test/clusters/dask.ts)…`)
  const dask = await startDask({ workers: WORKERS })
  if (!('skip' in dask)) stack.defer(dask.stop)

  const slurmEnv: NodeJS.ProcessEnv = 'skip' in slurm ? {} : { ...slurm.env, SLURM_TMPDIR: join(ctx.tmp, 'slurm-scratch') }
  delete slurmEnv[RUN_ENV]
  // Slurm's commands read the cluster's config even for --version
  const slurmVersion = 'skip' in slurm ? undefined : versionOf('sinfo', ['--version'], slurmEnv)
  await mkdir(join(ctx.tmp, 'slurm-scratch'))
  /**
   * A fresh coordinator per run, stopped with `owner`: every run starts from the same state. (A coordinator that has seen
   * more than 14 peers from one IP within the hour stops exchanging heartbeats with new ones: gossipsub's IP colocation
   * penalty; on this one machine every bridged node has the same IP.)
   */
  let coordinators = 0
  const startCoordinator = async (owner: AsyncDisposableStack): Promise<Coordinator> => {
    // it runs sbatch (SLURM_CONF), and the Slurm nodes inherit its environment (their scratch under the suite's tmp)
    const node = await spawnNode({ name: 'coordinator', dataDir: join(ctx.tmp, `coordinator-${++coordinators}`), args: ['--no-onnx-probe'], env: slurmEnv }, owner)
    await node.ready({ signal: ctx.signal })
    return { node, api: new ApiClient(await resolveApiTarget({ dataDir: node.dataDir })) }
  }

  // 1. `up` → first shard running, the engines alternating
  const upSize = SIZES[SIZES.length - 1]!
  const upRuns = { slurm: [] as UpSample[], dask: [] as UpSample[] }
  const timeUp = async (engine: 'slurm' | 'dask', upArgs: string[]): Promise<UpSample> => {
    await using owner = new AsyncDisposableStack()
    const { node, api } = await startCoordinator(owner)
    return await timeBridgeUp({ api, dataDir: node.dataDir, engine, upArgs, spec: campaignSpec(example, upSize, engine), baseDir: EXAMPLE_DIR, signal: ctx.signal })
  }
  for (let i = 1; i <= UP_RUNS; i++) {
    if (!('skip' in slurm)) {
      ctx.progress(`run ${i}/${UP_RUNS}: zp bridge slurm up --nodes ${WORKERS} → first shard…`)
      upRuns.slurm.push(await timeUp('slurm', ['--nodes', String(WORKERS)]))
    }
    if (!('skip' in dask)) {
      ctx.progress(`run ${i}/${UP_RUNS}: zp bridge dask up (${WORKERS} workers) → first shard…`)
      upRuns.dask.push(await timeUp('dask', ['--scheduler', dask.address, '--python', dask.python]))
    }
  }
  // its daemons would share the CPUs with the comparison
  await stopSlurm()
  const daskVersion = 'skip' in dask ? undefined : versionOf(dask.python, ['-c', 'import distributed; print(distributed.__version__)'])
  const numpyVersion = 'skip' in dask ? undefined : versionOf(dask.python, ['-c', 'import numpy; print(numpy.__version__)'])
  const rows: Row[] = [
    'skip' in slurm
      ? { name: `Slurm: ${slurm.skip}`, figures: {} }
      : upRow(`Slurm ${slurmVersion} (the project's single-node test cluster): \`zp bridge slurm up --nodes ${WORKERS}\` → first shard running on a bridged node`, upRuns.slurm),
    'skip' in dask
      ? { name: `Dask: ${dask.skip}`, figures: {} }
      : upRow(`Dask ${daskVersion} (scheduler + ${WORKERS} workers with nannies): \`zp bridge dask up\` → first shard running on a bridged node`, upRuns.dask)
  ]

  // 2. the Monte Carlo campaign: mesh on the Dask-bridged nodes vs native Dask tasks on the same workers
  if (!('skip' in dask)) {
    ctx.progress(`zp bridge dask up for the comparison, and a Dask client (bench/dask-price.py)…`)
    const { node: coordinator, api } = await startCoordinator(stack)
    const bridge = await daskBridgeUp({ api, dataDir: coordinator.dataDir, scheduler: dask.address, python: dask.python, workers: WORKERS, signal: ctx.signal })
    stack.defer(async () => { await bridgeDown({ api, dataDir: coordinator.dataDir, engine: 'dask' }, bridge.alloc.id) })
    const client = await startDaskPrice({ python: dask.python, address: dask.address, workers: WORKERS, signal: ctx.signal }, stack)
    const idlePids = [coordinator.pid, ...bridge.pids]
    const cases = SIZES.map(size => ({ size, shards: planShards(size, example.seed), mesh: [] as number[], native: new Map(MODES.map(m => [m.mode, [] as number[]])), idleCpuMs: [] as number[] }))
    const once = async (c: typeof cases[number], counted: boolean): Promise<void> => {
      const mesh = await meshPrice({ coordinator, api, spec: campaignSpec(example, c.size, 'dask'), baseDir: EXAMPLE_DIR, signal: ctx.signal })
      if (mesh.workers.some(w => !w.startsWith('dask-'))) throw new Error(`shards ran on ${mesh.workers.join(', ')}, not only on the Dask-bridged nodes`)
      for (const { mode } of MODES) {
        const native = await nativePrice(client, mode, c.shards, example.params, idlePids, ctx.signal)
        if (mode !== 'numpy') sameRows(`the ${mode} Dask tasks`, native.rows, mesh.rows)
        else checkPrice(native.rows, example.params)
        if (counted) {
          c.native.get(mode)!.push(native.seconds)
          c.idleCpuMs.push(native.idleCpuMs)
        }
      }
      if (counted) c.mesh.push(mesh.seconds)
    }
    ctx.progress(`warm-up: the mesh and every native mode once at ${cases[0]!.size.shards} × ${cases[0]!.size.perShard.toLocaleString('en-US')} (module blob on the nodes, warm Node processes, numpy imported on the workers)…`)
    await once(cases[0]!, false)
    for (let i = 1; i <= RUNS; i++) {
      for (const c of cases) {
        ctx.progress(`run ${i}/${RUNS}: ${c.size.shards} shards × ${c.size.perShard.toLocaleString('en-US')} paths: mesh, then ${MODES.map(m => m.mode).join(', ')}…`)
        await once(c, true)
      }
    }
    for (const c of cases) {
      const label = `Monte Carlo, ${c.size.shards} shards × ${c.size.perShard.toLocaleString('en-US')} paths`
      rows.push({ name: `${label}: mesh, ${WORKERS} Dask-bridged zp-nodes (1 slot each), submit → SUCCEEDED`, figures: timeFigures(c.size.shards, c.mesh) })
      for (const m of MODES) {
        const seconds = c.native.get(m.mode)!
        // run by run: each native run against the mesh run of the same round
        const ratios = seconds.map((s, i) => s / c.mesh[i]!)
        rows.push({ name: `${label}: ${m.name}`, figures: { ...timeFigures(c.size.shards, seconds), vsMesh: { value: summarize(ratios).p50, unit: 'ratio', samples: ratios.map(r => Number(r.toPrecision(3))) } } })
      }
      const [spawn, warm] = [c.native.get('spawn')!, c.native.get('warm')!].map(s => summarize(s).p50)
      notes.push(`${label}: spawning Node per task cost ${Math.round((spawn! - warm!) * 1000 * WORKERS / c.size.shards)} ms per task over the warm Node process (median runs); ` +
        `the idle mesh (coordinator and bridged nodes) used ${Math.round(summarize(c.idleCpuMs).p50)} ms of CPU during a native run (median).`)
    }
  }
  for (const row of rows) ctx.progress(describe(row))
  return {
    method: 'Every process on this 2-core machine, loopback TCP. A coordinator zp-node process, a fresh one per run (`--no-onnx-probe`, default liveness and replicas), that runs no shard: every campaign `requires.labels: { bridge: ENGINE }`, which only bridged nodes carry. ' +
      `\`up\` → first shard: the example campaign (examples/monte-carlo, ${upSize.shards} shards × ${upSize.perShard.toLocaleString('en-US')} paths) is submitted first (nothing can run it), then \`zp bridge slurm up --nodes ${WORKERS}\` ` +
      `(the project's Slurm 22.05 test cluster, test/clusters/slurm.ts: slurmctld, slurmd, slurmdbd, MariaDB, munge) or \`zp bridge dask up --scheduler … --python …\` (test/clusters/dask.ts: a scheduler and ${WORKERS} workers × 1 thread, with nannies) runs as a \`zp\` process (the pinned Node); ` +
      'the coordinator\'s campaign status and peers are polled every 50 ms until a shard is running or done; times from just before the `zp` process starts: its exit, the first bridged node ALIVE (its stateSince in the coordinator\'s peer table), its capability report (which carries the labels) first seen, the first lease (the campaign\'s startedAt), the first shard running. ' +
      `Then the campaign is cancelled and \`zp bridge down\` waits for the nodes to leave; ${UP_RUNS} runs per engine, alternating. ` +
      `Comparison: one \`zp bridge dask up\` (a zp-node per Dask worker, 1 slot each); the example campaign (its params, seed and retry) at ${SIZES.map(s => `${s.shards} × ${s.perShard.toLocaleString('en-US')}`).join(' and ')} paths submitted to the coordinator's POST /v1/campaigns, timed to its endedAt (SUCCEEDED, every result stored); ` +
      'the same shards (the coordinator\'s plan: the same path ranges and shard seeds) as native Dask tasks from one client process (bench/dask-price.py, `client.map` with pure=False, `gather`, timed by the client) on the same workers. ' +
      `One warm-up run of the mesh and of each native mode at the first size, then ${RUNS} rounds of every case back to back; median run, min and max; mesh / this: this run's time over the mesh run's of the same round (above 1: the mesh was faster), median.`,
    parameters: {
      workers: WORKERS,
      upRuns: UP_RUNS,
      upCampaign: `${upSize.shards} × ${upSize.perShard}`,
      sizes: SIZES.map(s => `${s.shards} × ${s.perShard}`),
      runs: RUNS,
      pollMs: 50,
      slurm: slurmVersion ?? ('skip' in slurm ? slurm.skip : undefined),
      dask: daskVersion != null ? `Debian python3-distributed ${daskVersion}` : ('skip' in dask ? dask.skip : undefined),
      ...(!('skip' in dask) ? { python: dask.python, numpy: numpyVersion ?? 'not importable' } : {})
    },
    columns: [
      { label: 'median (ms)', figure: 'ms' },
      { label: 'min (ms)', figure: 'ms', stat: 'min' },
      { label: 'max (ms)', figure: 'ms', stat: 'max' },
      { label: '`up` exited (ms)', figure: 'up' },
      { label: 'node ALIVE (ms)', figure: 'alive' },
      { label: 'labels advertised (ms)', figure: 'advertised' },
      { label: 'first lease (ms)', figure: 'leased' },
      { label: 'shards/s', figure: 'rate' },
      { label: 'mesh / this', figure: 'vsMesh' }
    ],
    rows,
    notes: [
      'The `up` rows: "median" is `zp bridge … up` → first shard running; the other columns are the median run\'s steps, each from the same start. A bridged node advertises its labels with its first capability report, after its probe (ONNX Runtime\'s included: the bridges start nodes with the default probe); no shard is leased to it before. A shard counts as running from its first progress report (price.mjs reports each tenth of its paths: about 12 ms into a 1,000,000-path shard here).',
      'The native rows: "spawn" runs exactly the mesh\'s JS (price.mjs on the same shards: rows bit-identical to the mesh\'s, checked every run) but pays a Node process start per task; "warm" runs the same JS in one Node process per worker, started in the warm-up (rows checked the same way), so it costs what Dask itself costs; ' +
        '"numpy" is what a Dask user would write: the same GBM paths and payoffs, vectorised in batches of 100,000, with numpy\'s default generator (PCG64, normals by ziggurat) instead of price.mjs\'s xoshiro128** and polar method: other random numbers (its price is checked within 4 standard errors of Black–Scholes), less CPU per path.',
      'The mesh rows include what the native rows have no counterpart for: the POST (loading the spec, storing price.mjs as a blob), leases and results through the coordinator, and the checkpoints on 2 replicas (the default; here the two bridged nodes).',
      ...notes
    ]
  }
}

interface Coordinator {
  node: LocalNode
  api: ApiClient
}

function versionOf (command: string, args: string[], env?: NodeJS.ProcessEnv): string | undefined {
  const probe = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000, env: env ?? process.env })
  return probe.status === 0 ? probe.stdout.trim().replace(/^slurm(-wlm)? /, '') : undefined
}

/** numpy's rows use other random numbers: they must still price the option */
function checkPrice (rows: Array<{ paths: number, sumPayoff: number, sumPayoffSq: number }>, params: Record<string, unknown>): void {
  const p = optionParams(params)
  const est = estimate(rows, p)
  const exact = blackScholes(p)
  if (Math.abs(est.price - exact) > 4 * est.standardError) throw new Error(`the numpy tasks priced the option at ${est.price} ± ${est.standardError}, not near Black–Scholes ${exact}`)
}

function ms (samples: number[]): Figure {
  return { value: summarize(samples).p50, unit: 'ms', stats: summarize(samples), samples: samples.map(Math.round) }
}

function upRow (name: string, samples: UpSample[]): Row {
  // the steps of the median run, so they add up to its total
  const median = [...samples].sort((a, b) => a.runningMs - b.runningMs)[Math.floor(samples.length / 2)]!
  const step = (key: keyof UpSample): Figure => ({ value: median[key], unit: 'ms', samples: samples.map(s => Math.round(s[key])) })
  return {
    name,
    figures: { ms: ms(samples.map(s => s.runningMs)), up: step('upReturnedMs'), alive: step('aliveMs'), advertised: step('advertisedMs'), leased: step('leasedMs'), probe: step('probeMs') }
  }
}

function timeFigures (shards: number, seconds: number[]): Record<string, Figure> {
  const rates = seconds.map(s => shards / s)
  return { ms: ms(seconds.map(s => s * 1000)), rate: { value: summarize(rates).p50, unit: 'shards/s', stats: summarize(rates), samples: rates.map(r => Number(r.toPrecision(3))) } }
}

function describe (row: Row): string {
  const f = row.figures
  if (f.ms == null) return row.name
  const steps = f.up != null ? `; up exited ${Math.round(f.up.value)} ms, ALIVE ${Math.round(f.alive!.value)}, labels ${Math.round(f.advertised!.value)}, lease ${Math.round(f.leased!.value)} (probe ${Math.round(f.probe!.value)} ms)` : ''
  return `${row.name}: ${Math.round(f.ms.value)} ms (runs: ${f.ms.samples!.join(', ')})${steps}${f.vsMesh != null ? `; mesh / this ${f.vsMesh.value.toFixed(2)}×` : ''}`
}
