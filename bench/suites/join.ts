import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerJson } from '../../node/api/routes.ts'
import { ApiClient, resolveApiTarget } from '../../node/api/client.ts'
import { readNodeInfo } from '../../node/datadir.ts'
import { silentLogger } from '../../node/logger.ts'
import { ZpNode, type NodeOptions } from '../../node/node.ts'
import { delay } from '../../protocols/common/signals.ts'
import { fakeCapabilities } from '../../test/mesh/harness.ts'
import { spawnNode } from '../mesh.ts'
import { summarize } from '../stats.ts'
import type { Figure, Row, Suite, SuiteContext } from '../suite.ts'

const IN_PROCESS_RUNS = 10
/** per flavour of process run: with and without the ONNX probe */
const PROCESS_RUNS = 5
const JOIN_TIMEOUT_MS = 30_000
const POLL_MS = 25

export const joinSuite: Suite = {
  name: 'join',
  title: 'Node start → listed alive by its bootstrap peer',
  run: async (ctx) => {
    const inProcess = await joinInProcess(ctx)
    const processes = await joinProcesses(ctx)
    return {
      method: 'Fresh identity and data dir for every joiner; the bootstrap runs throughout. Join time: from starting the joiner to the moment the bootstrap\'s membership marks it ALIVE ' +
        `(in-process: its transition event; processes: the peer's \`stateSince\` in the bootstrap's \`GET /v1/peers\`, polled every ${POLL_MS} ms). ` +
        'Start-up: from the same start to the joiner\'s incarnation, when its `ZpNode` exists (identity, database and libp2p created, not yet listening). ' +
        `In-process: \`ZpNode.start()\` in the bench process, modules already loaded, ${IN_PROCESS_RUNS} runs after one warm-up. ` +
        `Processes: \`zp-node join\` spawned through \`LocalNode\` (the real CLI), ${PROCESS_RUNS} runs of each flavour, alternating; Node start-up and module loading included.`,
      parameters: {
        inProcessRuns: IN_PROCESS_RUNS,
        processRuns: PROCESS_RUNS,
        pollMs: POLL_MS,
        inProcessProbe: 'fixed fake capability report (no probing)',
        processBootstrap: 'zp-node start --no-onnx-probe, so its own probe does not compete with the joins',
        timings: 'defaults (heartbeat 1 s): a join is driven by the dial and the hello, not by heartbeats'
      },
      columns: [
        { label: 'p50 (ms)', figure: 'join', stat: 'p50' },
        { label: 'p90 (ms)', figure: 'join', stat: 'p90' },
        { label: 'min (ms)', figure: 'join', stat: 'min' },
        { label: 'max (ms)', figure: 'join', stat: 'max' },
        { label: 'p50 start-up (ms)', figure: 'startup', stat: 'p50' },
        { label: 'runs', figure: 'join', stat: 'n' }
      ],
      rows: [inProcess, ...processes],
      notes: [
        'The capability probe (ONNX Runtime execution providers included) runs in the background and does not hold up the join, but on a 2-core box it competes for CPU: hence the two process rows.'
      ]
    }
  }
}

async function joinInProcess (ctx: SuiteContext): Promise<Row> {
  await using stack = new AsyncDisposableStack()
  const base = (name: string): NodeOptions => ({
    dataDir: join(ctx.tmp, name),
    name,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    api: false,
    probe: fakeCapabilities(),
    logger: silentLogger(),
    logFile: false,
    writeNodeInfo: false
  })
  const bootstrap = await ZpNode.start(base('bootstrap'))
  stack.defer(async () => { await bootstrap.stop() })
  const bootstrapAddr = multiaddr(bootstrap.multiaddrs()[0]!)
  const aliveAt = new Map<string, number>()
  bootstrap.onPeerTransition(t => { if (t.to === 'alive') aliveAt.set(t.peerId, Date.now()) })

  const joins: number[] = []
  const startups: number[] = []
  for (let run = 0; run <= IN_PROCESS_RUNS; run++) {
    const name = `joiner-${run}`
    const t0 = Date.now()
    const node = await ZpNode.start({ ...base(name), bootstrap: [bootstrapAddr] })
    try {
      const alive = await until(() => aliveAt.get(node.peerId), `the bootstrap to see ${name} alive`, ctx.signal)
      const listed = (await bootstrap.peers()).find(p => p.peerId === node.peerId)
      if (listed?.state !== 'alive') throw new Error(`${name} turned alive but the bootstrap's peers() lists it ${listed?.state ?? 'not at all'}`)
      // the first run pays for JIT and first-use set-up
      if (run > 0) {
        joins.push(alive - t0)
        startups.push(node.incarnation - t0)
      }
    } finally {
      await node.stop()
    }
  }
  ctx.progress(`in-process: ${describe(joins)}`)
  return { name: 'in-process: `ZpNode.start()` → alive', figures: { join: durations(joins), startup: durations(startups) } }
}

async function joinProcesses (ctx: SuiteContext): Promise<Row[]> {
  await using stack = new AsyncDisposableStack()
  const bootstrap = await spawnNode({ name: 'bootstrap', dataDir: join(ctx.tmp, 'proc-bootstrap'), args: ['--no-onnx-probe'] }, stack)
  const info = await bootstrap.ready({ signal: ctx.signal })
  const api = new ApiClient(await resolveApiTarget({ dataDir: bootstrap.dataDir }))

  const flavours = [
    { name: 'processes: spawn `zp-node join` → alive in `/v1/peers`', args: [] as string[], joins: [] as number[], startups: [] as number[] },
    { name: 'processes, `--no-onnx-probe`', args: ['--no-onnx-probe'], joins: [] as number[], startups: [] as number[] }
  ]
  // alternating keeps slow drift in the box's load from favouring one flavour
  for (let run = 0; run < PROCESS_RUNS; run++) {
    for (const [i, flavour] of flavours.entries()) {
      await using joinerStack = new AsyncDisposableStack()
      const name = `joiner-${i}-${run}`
      const dataDir = join(ctx.tmp, name)
      const t0 = Date.now()
      const joiner = await spawnNode({ name, dataDir, join: info.multiaddrs[0]!, args: flavour.args }, joinerStack)
      const listed = await until(async () => {
        if (joiner.proc.exitCode != null) throw new Error(`zp-node '${name}' exited:\n${await joiner.output()}`)
        const peers = await api.get<PeerJson[]>('/v1/peers', { signal: ctx.signal })
        return peers.find(p => p.name === name && p.state === 'alive')
      }, `the bootstrap's /v1/peers to list ${name} alive`, ctx.signal)
      flavour.joins.push(listed.stateSince - t0)
      const started = await until(async () => await readNodeInfo(dataDir).catch(() => undefined), `${name}'s node.json`, ctx.signal)
      flavour.startups.push(Date.parse(started.startedAt) - t0)
    }
  }
  for (const f of flavours) ctx.progress(`${f.name}: ${describe(f.joins)}`)
  return flavours.map(f => ({ name: f.name, figures: { join: durations(f.joins), startup: durations(f.startups) } }))
}


async function until<T> (probe: () => T | undefined | Promise<T | undefined>, what: string, signal: AbortSignal): Promise<T> {
  const deadline = Date.now() + JOIN_TIMEOUT_MS
  for (;;) {
    const value = await probe()
    if (value != null) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${JOIN_TIMEOUT_MS} ms waiting for ${what}`)
    await delay(POLL_MS, signal)
  }
}

function durations (samples: number[]): Figure {
  const stats = summarize(samples)
  return { value: stats.p50, unit: 'ms', stats, samples }
}

function describe (samples: number[]): string {
  const s = summarize(samples)
  return `p50 ${s.p50.toFixed(0)} ms, min ${s.min.toFixed(0)} ms, max ${s.max.toFixed(0)} ms (${s.n} runs)`
}
