import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { BlobStore } from '../../node/blobs/store.ts'
import { silentLogger } from '../../node/logger.ts'
import { ZpNode } from '../../node/node.ts'
import { generatePskFile } from '../../node/psk.ts'
import { BLOB_CHUNK_BYTES, CLIENT_HIGH_WATER_BYTES } from '../../protocols/blob/constants.ts'
import { pauseAfterDelivery } from '../../protocols/common/pause.ts'
import type { BlobWriter } from '../../protocols/blob/types.ts'
import { decodeAs, encode } from '../../protocols/common/codec.ts'
import { waitForDrain } from '../../protocols/common/drain.ts'
import { FrameDecoder, frame } from '../../protocols/common/framing.ts'
import { fakeCapabilities } from '../../test/mesh/harness.ts'
import { CPU_ACTOR } from '../echo.ts'
import { summarize } from '../stats.ts'
import { spawnPeer } from '../peer-process.ts'
import type { Figure, Row, Suite, SuiteContext, SuiteOutput } from '../suite.ts'

/** the blob the peer holds; raw pulls move as many bytes */
const BLOB_MB = 128
/** counted runs per case, after one warm-up run, cases alternating */
const RUNS = 5
const MB = 1e6

/** Bulk bytes with no protocol of ours: the client names a byte count, the peer sends that many and closes. */
export const BULK_PROTOCOL = '/zp-bench/bulk/1.0.0'
const BulkRequestSchema = z.object({ bytes: z.number().int().nonnegative() })

/** The peer's end of the bulk protocol: one 256 KiB buffer sent over and over, room awaited before each send. */
export function serveBulk (stream: Stream): void {
  const piece = randomBytes(BLOB_CHUNK_BYTES)
  const decoder = new FrameDecoder(1024)
  stream.addEventListener('message', (evt) => {
    for (const f of decoder.push(evt.data)) {
      const { bytes } = decodeAs(BulkRequestSchema, f, 'bulk request')
      void (async () => {
        for (let left = bytes; left > 0; left -= piece.byteLength) {
          await waitForDrain(stream)
          stream.send(left >= piece.byteLength ? piece : piece.subarray(0, left))
        }
        await stream.close()
      })().catch((err: Error) => { stream.abort(err) })
    }
  }, { once: true })
}

export const blobSuite: Suite = {
  name: 'blob',
  title: 'Blob fetch vs raw libp2p stream (MB/s)',
  run: runBlobSuite
}

type Case = 'raw' | 'rawWrite' | 'blob'
const CASES: Array<{ key: Case, name: string }> = [
  { key: 'raw', name: 'raw stream pull, bytes discarded' },
  { key: 'rawWrite', name: 'raw stream pull + sha256 + write + fsync' },
  { key: 'blob', name: 'blob fetch (`/zp/blob`, hash-verified, into the store)' }
]

async function runBlobSuite (ctx: SuiteContext): Promise<SuiteOutput> {
  const rows: Row[] = [await localRow(ctx)]
  rows.push(...await overNetwork(ctx, 'plain'))
  rows.push(...await overNetwork(ctx, 'psk'))
  return {
    method: `Two processes on loopback TCP (noise + yamux; PSK rows add @libp2p/pnet), one connection per pair. The peer (bench/peer.ts) holds a ${BLOB_MB} MB random blob in its BlobStore and serves a raw bulk protocol; ` +
      `per case, one warm-up run, then ${RUNS} counted runs alternating between cases; MB/s (10^6 bytes) is the median run's rate; CPU is user + system time per MB (median run), of the client (this process) and of the peer (the sender). ` +
      'Raw: the client asks for the same number of bytes over a bare libp2p protocol; the peer sends one in-memory 256 KiB buffer repeatedly (no file reads) with backpressure. ' +
      'Raw + write: the same, the client hashing and writing what arrives through the blob store\'s writer (temp file, fsync) with the blob client\'s pause/resume, then discarding it. ' +
      'Blob: `BlobService.fetch` of the blob (server reads the file, client verifies sha256, fsyncs and renames into its store), removed again after each run. ' +
      'Local: the store\'s writer fed the same number of bytes from memory, no network: the disk and hashing cost alone.',
    parameters: {
      blobBytes: BLOB_MB * MB,
      runs: RUNS,
      chunkBytes: BLOB_CHUNK_BYTES,
      clientHighWaterBytes: CLIENT_HIGH_WATER_BYTES,
      transport: 'TCP loopback, noise, yamux (PSK rows: + pnet); one connection, both ends Node ' + process.version,
      storeDisk: 'the bench\'s temp dir (os.tmpdir())',
      peer: 'child process (bench/peer.ts --blob-mb --trust <bench node>); both ends serve and fetch through ZpNode.blobs'
    },
    columns: [
      { label: 'MB/s', figure: 'rate' },
      { label: 'min MB/s', figure: 'rate', stat: 'min' },
      { label: 'max MB/s', figure: 'rate', stat: 'max' },
      { label: 'client CPU ms/MB', figure: 'cpu' },
      { label: 'peer CPU ms/MB', figure: 'peerCpu' },
      { label: 'vs raw', figure: 'vsRaw' }
    ],
    rows,
    notes: [
      'Both processes share the machine\'s cores with each other and with the disk\'s write-back: on a 2-core box the rates are CPU-bound, and the CPU columns show where the time goes (noise and pnet encryption on both sides, hashing and writing on the client, file reads on the peer).'
    ]
  }
}

async function localRow (ctx: SuiteContext): Promise<Row> {
  const store = await BlobStore.open(join(ctx.tmp, 'local-blobs'))
  const piece = randomBytes(BLOB_CHUNK_BYTES)
  const rates: number[] = []
  const cpus: number[] = []
  for (let run = 0; run <= RUNS; run++) {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const writer = await store.createWriter({ name: 'local' })
    try {
      for (let left = BLOB_MB * MB; left > 0; left -= piece.byteLength) {
        await writer.write([left >= piece.byteLength ? piece : piece.subarray(0, left)])
      }
      await writer.finish()
    } finally {
      await writer.discard()
    }
    const seconds = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    if (run > 0) {
      rates.push(BLOB_MB / seconds)
      cpus.push((cpu.user + cpu.system) / 1000 / BLOB_MB)
    }
  }
  const row = { name: 'local: sha256 + write + fsync from memory (no network)', figures: { rate: rateFigure(rates), cpu: cpuFigure(cpus) } }
  ctx.progress(describe(row))
  return row
}

async function overNetwork (ctx: SuiteContext, flavour: 'plain' | 'psk'): Promise<Row[]> {
  await using stack = new AsyncDisposableStack()
  const pskFile = flavour === 'psk' ? join(ctx.tmp, 'swarm.key') : undefined
  if (pskFile != null) await generatePskFile(pskFile)
  const node = await ZpNode.start({
    dataDir: join(ctx.tmp, `bench-${flavour}`),
    name: 'bench',
    listen: ['/ip4/127.0.0.1/tcp/0'],
    api: false,
    probe: fakeCapabilities(),
    logger: silentLogger(),
    logFile: false,
    writeNodeInfo: false,
    pskFile
  })
  stack.defer(async () => { await node.stop() })
  const { blobs } = node
  const store = blobs.store
  ctx.progress(`${flavour}: starting the peer and its ${BLOB_MB} MB blob…`)
  const peer = await spawnPeer(join(ctx.tmp, `peer-${flavour}`), [
    '--blob-mb', String(BLOB_MB), '--trust', node.peerId, ...(pskFile != null ? ['--psk', pskFile] : [])
  ], ctx.signal)
  stack.defer(async () => { await peer.stop() })

  const peerId = peerIdFromString(peer.peerId)
  await node.libp2p.dial(multiaddr(peer.multiaddrs[0]!), { signal: ctx.signal })
  const ref = peer.blob!
  const bytes = ref.size
  const peerCpu = node.host.ref<'usage'>({ peer: peer.peerId, name: CPU_ACTOR })
  /** CPU µs used so far: this process (the client), and the peer (the sender) */
  const cpu = async (): Promise<{ ours: number, theirs: number }> => {
    const theirs = await peerCpu.ask<NodeJS.CpuUsage>('usage')
    const ours = process.cpuUsage()
    return { ours: ours.user + ours.system, theirs: theirs.user + theirs.system }
  }

  const ops: Record<Case, () => Promise<void>> = {
    raw: async () => { await pullBulk(await node.libp2p.dialProtocol(peerId, BULK_PROTOCOL, { signal: ctx.signal }), bytes, undefined) },
    rawWrite: async () => {
      const writer = await store.createWriter({ name: 'raw' })
      try {
        await pullBulk(await node.libp2p.dialProtocol(peerId, BULK_PROTOCOL, { signal: ctx.signal }), bytes, writer)
        await writer.finish()
      } finally {
        await writer.discard()
      }
    },
    blob: async () => {
      await blobs.fetch(peer.peerId, ref, { signal: ctx.signal })
      await store.remove(ref.hash)
    }
  }
  await cpu()
  const connections = node.libp2p.getConnections(peerId).length
  if (connections !== 1) throw new Error(`expected one connection to the bench peer, found ${connections}: the comparison needs every case on the same one`)

  const rates: Record<Case, number[]> = { raw: [], rawWrite: [], blob: [] }
  const cpus: Record<Case, number[]> = { raw: [], rawWrite: [], blob: [] }
  const peerCpus: Record<Case, number[]> = { raw: [], rawWrite: [], blob: [] }
  for (let run = 0; run <= RUNS; run++) {
    for (const { key } of CASES) {
      ctx.signal.throwIfAborted()
      const cpu0 = await cpu()
      const t0 = performance.now()
      await ops[key]()
      const seconds = (performance.now() - t0) / 1000
      const cpu1 = await cpu()
      if (run > 0) {
        rates[key].push(bytes / MB / seconds)
        cpus[key].push((cpu1.ours - cpu0.ours) / 1000 / (bytes / MB))
        peerCpus[key].push((cpu1.theirs - cpu0.theirs) / 1000 / (bytes / MB))
      }
    }
  }
  const raw = summarize(rates.raw).p50
  return CASES.map(({ key, name }) => {
    const rate = rateFigure(rates[key])
    const row: Row = {
      name: `${flavour === 'psk' ? 'PSK: ' : ''}${name}`,
      figures: { rate, cpu: cpuFigure(cpus[key]), peerCpu: cpuFigure(peerCpus[key]), ...(key !== 'raw' ? { vsRaw: { value: rate.value / raw, unit: 'ratio' } } : {}) }
    }
    ctx.progress(describe(row))
    return row
  })
}

/**
 * Pulls `bytes` over the bulk protocol. With a writer, what arrives is hashed
 * and written the way the blob client does it: queued, the stream paused above
 * the same high-water mark, written in batches.
 */
async function pullBulk (stream: Stream, bytes: number, writer: BlobWriter | undefined): Promise<void> {
  const done = Promise.withResolvers<void>()
  let received = 0
  let queue: Uint8Array[] = []
  let queued = 0
  let paused = false
  let ended = false
  let writing: Promise<void> | undefined
  const finishIfDone = (): void => {
    if (!ended || writing != null || queue.length > 0) return
    if (received === bytes) done.resolve()
    else done.reject(new Error(`bulk pull ended after ${received} of ${bytes} bytes`))
  }
  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue
      queue = []
      for (const b of batch) queued -= b.byteLength
      await writer!.write(batch)
      if (paused && queued < CLIENT_HIGH_WATER_BYTES / 2) {
        paused = false
        if (stream.readStatus === 'paused') stream.resume()
      }
    }
  }
  stream.addEventListener('message', (evt) => {
    for (const buf of evt.data instanceof Uint8Array ? [evt.data] : evt.data) {
      received += buf.byteLength
      if (writer == null) continue
      queue.push(buf)
      queued += buf.byteLength
    }
    if (writer == null) return
    if (!paused && queued >= CLIENT_HIGH_WATER_BYTES) {
      paused = true
      pauseAfterDelivery(stream, () => paused)
    }
    writing ??= drain().then(() => { writing = undefined; finishIfDone() }, (err: unknown) => { done.reject(err) })
  })
  stream.addEventListener('end', () => { ended = true; finishIfDone() })
  stream.addEventListener('close', (evt) => { if (evt.error != null) done.reject(evt.error) })
  stream.send(frame(encode({ bytes })))
  await stream.close()
  await done.promise
}

function rateFigure (rates: number[]): Figure {
  const stats = summarize(rates)
  return { value: stats.p50, unit: 'MB/s', stats, samples: rates.map(r => Math.round(r)) }
}

function cpuFigure (perMb: number[]): Figure {
  return { value: summarize(perMb).p50, unit: 'ms', samples: perMb.map(c => Math.round(c * 100) / 100) }
}

function describe (row: Row): string {
  const { rate, cpu, peerCpu } = row.figures
  return `${row.name}: ${Math.round(rate!.value)} MB/s (runs: ${rate!.samples!.join(', ')}), CPU ${cpu!.value.toFixed(2)} ms/MB` +
    (peerCpu != null ? ` here, ${peerCpu.value.toFixed(2)} ms/MB on the peer` : '')
}

