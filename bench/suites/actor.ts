import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { DEFAULT_ASK_TIMEOUT_MS } from '../../actors/runtime/host.ts'
import { silentLogger } from '../../node/logger.ts'
import { ZpNode } from '../../node/node.ts'
import { ACTOR_WIRE_VERSION } from '../../protocols/actor/constants.ts'
import { encode } from '../../protocols/common/codec.ts'
import { frame } from '../../protocols/common/framing.ts'
import { fakeCapabilities } from '../../test/mesh/harness.ts'
import { CPU_ACTOR, ECHO_ACTOR, ECHO_PROTOCOL, PROGRESS, RawEchoClient, type Progress } from '../echo.ts'
import { closedLoop, loadFigures, type LoadWindow } from '../load.ts'
import { spawnPeer } from '../peer-process.ts'
import type { Row, Suite, SuiteContext, SuiteOutput } from '../suite.ts'

/** per path and concurrency */
const WARMUP_MS = 1000
/** counted time per path and concurrency: WINDOWS × WINDOW_MS, alternating actor and raw */
const WINDOWS = 10
const WINDOW_MS = 500
const CONCURRENCY = [1, 64]

export const actorSuite: Suite = {
  name: 'actor',
  title: 'Remote actor ask vs raw libp2p request/response',
  run: runActorSuite
}

async function runActorSuite (ctx: SuiteContext): Promise<SuiteOutput> {
  await using stack = new AsyncDisposableStack()
  const peer = await spawnPeer(join(ctx.tmp, 'peer'), [], ctx.signal, 30_000)
  stack.defer(async () => { await peer.stop() })
  const node = await ZpNode.start({
    dataDir: join(ctx.tmp, 'bench'),
    name: 'bench',
    listen: ['/ip4/127.0.0.1/tcp/0'],
    api: false,
    probe: fakeCapabilities(),
    logger: silentLogger(),
    logFile: false,
    writeNodeInfo: false
  })
  stack.defer(async () => { await node.stop() })

  const peerId = peerIdFromString(peer.peerId)
  await node.libp2p.dial(multiaddr(peer.multiaddrs[0]!), { signal: ctx.signal })
  const echo = node.host.ref<Progress>({ peer: peer.peerId, name: ECHO_ACTOR })
  const rawStream = await node.libp2p.dialProtocol(peerId, ECHO_PROTOCOL, { signal: ctx.signal })
  stack.defer(() => { rawStream.abort(new Error('benchmark done')) })
  const raw = new RawEchoClient(rawStream)
  const rawPayload = encode(PROGRESS)

  const actorOp = async (): Promise<void> => {
    const reply = await echo.ask<Progress>(PROGRESS)
    if (reply.task !== PROGRESS.task) throw new Error(`echo actor answered ${JSON.stringify(reply)}`)
  }
  const rawOp = async (): Promise<void> => {
    const reply = await raw.request(rawPayload)
    if (reply.byteLength !== rawPayload.byteLength) throw new Error(`raw echo answered ${reply.byteLength} bytes for ${rawPayload.byteLength}`)
  }
  const peerCpu = node.host.ref<'usage'>({ peer: peer.peerId, name: CPU_ACTOR })
  const cpu = async (): Promise<number> => {
    const theirs = await peerCpu.ask<NodeJS.CpuUsage>('usage')
    const ours = process.cpuUsage()
    return theirs.user + theirs.system + ours.user + ours.system
  }
  // opens the actor channel's stream, so both paths are ready before the clock starts
  await actorOp()
  const connections = node.libp2p.getConnections(peerId).length
  if (connections !== 1) throw new Error(`expected one connection to the bench peer, found ${connections}: the comparison needs both paths on the same one`)

  const rows: Row[] = []
  for (const concurrency of CONCURRENCY) {
    ctx.progress(`${concurrency} in flight: ${(2 * (WARMUP_MS + WINDOWS * WINDOW_MS)) / 1000} s…`)
    const window = { concurrency, durationMs: WINDOW_MS, signal: ctx.signal, cpu }
    await closedLoop(actorOp, { ...window, durationMs: WARMUP_MS })
    await closedLoop(rawOp, { ...window, durationMs: WARMUP_MS })
    // alternating short windows: a burst of other load on the box hits both paths alike
    const actorWindows: LoadWindow[] = []
    const rawWindows: LoadWindow[] = []
    for (let i = 0; i < WINDOWS; i++) {
      actorWindows.push(await closedLoop(actorOp, window))
      rawWindows.push(await closedLoop(rawOp, window))
    }
    const actor = loadFigures(actorWindows)
    const rawRun = loadFigures(rawWindows)
    rows.push({
      name: `actor ask, ${concurrency} in flight`,
      figures: { ...actor, vsRaw: { value: actor.throughput.value / rawRun.throughput.value, unit: 'ratio' } }
    }, {
      name: `raw req/resp, ${concurrency} in flight`,
      figures: { ...rawRun }
    })
    for (const row of rows.slice(-2)) ctx.progress(describe(row))
  }

  return {
    method: `Two processes on loopback TCP (noise + yamux), one connection. Closed loop: each of N workers sends its next request when the last is answered; per path, ${WARMUP_MS / 1000} s warm-up, then ${WINDOWS} windows of ${WINDOW_MS / 1000} s counted, alternating with the other path; ops/s is the median window's rate, CPU the user + system time of both processes per op. ` +
      'Actor: `ask` to a public echo actor (schema-validated) on the other node over the actor channel\'s one multiplexed stream. ' +
      'Raw: the same message bytes, length-prefixed, echoed by a bare libp2p protocol handler, pipelined on one stream.',
    parameters: {
      warmupMs: WARMUP_MS,
      windows: WINDOWS,
      windowMs: WINDOW_MS,
      concurrency: CONCURRENCY,
      message: PROGRESS,
      messageBytes: rawPayload.byteLength,
      rawFrameBytes: frame(rawPayload).byteLength,
      // ids above 65535 take 5 bytes in msgpack: most of a run's requests are that size
      actorRequestFrameBytes: frame(encode({ v: ACTOR_WIRE_VERSION, id: 100_000, kind: 'ask', to: ECHO_ACTOR, body: PROGRESS, ttlMs: DEFAULT_ASK_TIMEOUT_MS })).byteLength,
      actorReplyFrameBytes: frame(encode({ v: ACTOR_WIRE_VERSION, id: 100_000, status: 'ok', body: PROGRESS })).byteLength,
      rawMode: 'pipelined on one stream (as the actor channel multiplexes asks on one stream)',
      transport: 'TCP loopback, noise, yamux; one connection, both ends Node ' + process.version,
      peer: 'child process (bench/peer.ts)'
    },
    columns: [
      { label: 'ops/s', figure: 'throughput' },
      { label: 'p50 latency (ms)', figure: 'latency', stat: 'p50' },
      { label: 'p99 latency (ms)', figure: 'latency', stat: 'p99' },
      { label: 'CPU per op, both processes (µs)', figure: 'cpu' },
      { label: 'actor / raw (ops/s)', figure: 'vsRaw' }
    ],
    rows,
    notes: ['The raw client and echo do no msgpack work: raw is the transport ceiling; the actor path adds the envelope codec, schema checks, mailbox and reply correlation on both sides.']
  }
}

function describe (row: Row): string {
  const { throughput, latency } = row.figures
  return `${row.name}: ${Math.round(throughput!.value).toLocaleString('en-US')} ops/s (per window: ${throughput!.samples!.join(', ')}), ` +
    `p50 ${latency!.stats!.p50.toFixed(3)} ms, p99 ${latency!.stats!.p99.toFixed(3)} ms, CPU ${row.figures.cpu!.value.toFixed(0)} µs/op`
}

