import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import type { BlobStore } from '../node/blobs/store.ts'
import { silentLogger } from '../node/logger.ts'
import { ZpNode } from '../node/node.ts'
import type { BlobRef } from '../protocols/campaign/spec.ts'
import { fakeCapabilities } from '../test/mesh/harness.ts'
import { CPU_ACTOR, ECHO_ACTOR, ECHO_PROTOCOL, cpuActor, echoActor, serveRawEcho } from './echo.ts'
import { BULK_PROTOCOL, serveBulk } from './suites/blob.ts'

/**
 * The far end of the actor and blob suites, in its own process so that each
 * side has a core and an event loop of its own: a ZpNode with a public echo
 * actor, a CPU time actor and a raw echo protocol; with --blob-mb, also one
 * random blob of that many MB (10^6 bytes) in its blob store, and the raw bulk
 * protocol. Its blobs go to the peers it trusts (--trust). Usage:
 * peer.ts <data-dir> [--blob-mb N] [--psk FILE] [--trust PEER-ID]. Prints
 * {"peerId":…,"multiaddrs":[…],"blob":{…}} as one line once it listens, and
 * stops when its stdin closes (the bench is done, or has died).
 */
const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { 'blob-mb': { type: 'string' }, psk: { type: 'string' }, trust: { type: 'string' } }
})
const dataDir = positionals[0]
if (dataDir == null) {
  process.stderr.write('usage: bench/peer.ts <data-dir> [--blob-mb N] [--psk FILE] [--trust PEER-ID]\n')
  process.exit(2)
}

const node = await ZpNode.start({
  dataDir,
  name: 'bench-peer',
  listen: ['/ip4/127.0.0.1/tcp/0'],
  api: false,
  probe: fakeCapabilities(),
  logger: silentLogger(),
  logFile: false,
  writeNodeInfo: false,
  pskFile: values.psk,
  trust: values.trust != null ? [values.trust] : []
})
node.host.spawn(ECHO_ACTOR, echoActor())
node.host.spawn(CPU_ACTOR, cpuActor())
await node.libp2p.handle(ECHO_PROTOCOL, (stream) => { serveRawEcho(stream) })

let blob: BlobRef | undefined
if (values['blob-mb'] != null) {
  blob = await randomBlob(node.blobs.store, Number(values['blob-mb']) * 1e6)
  await node.libp2p.handle(BULK_PROTOCOL, (stream) => { serveBulk(stream) })
}
process.stdout.write(JSON.stringify({ peerId: node.peerId, multiaddrs: node.multiaddrs(), ...(blob != null ? { blob } : {}) }) + '\n')

const stop = (): void => {
  void node.stop().finally(() => {
    // libp2p can leave sockets half-closed for a while; the node is done
    setTimeout(() => process.exit(0), 100).unref()
  })
}
process.stdin.once('end', stop)
process.stdin.resume()
process.once('SIGTERM', stop)

/** Writes `bytes` random bytes as one blob, a MiB at a time. */
async function randomBlob (store: BlobStore, bytes: number): Promise<BlobRef> {
  const writer = await store.createWriter({ name: 'random.bin' })
  try {
    for (let left = bytes; left > 0; left -= 2 ** 20) await writer.write([randomBytes(Math.min(left, 2 ** 20))])
    const hash = await writer.finish()
    await writer.commit()
    return { hash, size: bytes, name: 'random.bin' }
  } finally {
    await writer.discard()
  }
}
