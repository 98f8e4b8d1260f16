import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { generateKey } from '@libp2p/pnet'
import { BlobAccess } from '../../node/blobs/access.ts'
import { BlobService } from '../../node/blobs/service.ts'
import { BlobStore } from '../../node/blobs/store.ts'
import type { Stream } from '@libp2p/interface'
import { createMeshLibp2p, STREAM_WINDOW_BYTES, type MeshLibp2p } from '../../node/libp2p.ts'
import { silentLogger } from '../../node/logger.ts'
import { fetchBlob } from '../../protocols/blob/client.ts'
import { BLOB_PROTOCOL, CLIENT_HIGH_WATER_BYTES } from '../../protocols/blob/constants.ts'
import { delay } from '../../protocols/common/signals.ts'
import type { BlobSink } from '../../protocols/blob/types.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import { tempDir } from '../helpers.ts'

interface TestNode {
  libp2p: MeshLibp2p
  store: BlobStore
  access: BlobAccess
  blobs: BlobService
  peer: string
  /** streams this node's blob server has answered with bytes (openReader calls) */
  served: () => number
}

let dir: { path: string, remove: () => Promise<void> }
const nodes: TestNode[] = []

beforeAll(async () => { dir = await tempDir('zp-blob-mesh-') })
afterAll(async () => { await dir.remove() })
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.blobs.stop()
    await n.libp2p.stop()
  }
})

async function startNode (name: string, opts: { psk?: Uint8Array } = {}): Promise<TestNode> {
  const libp2p = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], psk: opts.psk })
  const store = await BlobStore.open(join(dir.path, `${name}-${nodes.length}-${Date.now()}`, 'blobs'))
  const openReader = vi.spyOn(store, 'openReader')
  const access = new BlobAccess()
  const blobs = new BlobService({ libp2p, store, access, log: silentLogger() })
  await blobs.start()
  await libp2p.start()
  const node = { libp2p, store, access, blobs, peer: libp2p.peerId.toString(), served: () => openReader.mock.calls.length }
  nodes.push(node)
  return node
}

/** A server holding `bytes` as a blob that `client` may fetch, and a client connected to it. */
async function pair (bytes: Uint8Array, opts: { psk?: Uint8Array, grant?: boolean } = {}): Promise<{ server: TestNode, client: TestNode, ref: BlobRef }> {
  const server = await startNode('server', opts)
  const client = await startNode('client', opts)
  const ref = await server.store.putBytes(bytes, 'data.bin')
  if (opts.grant !== false) server.access.grant('campaign-1', client.peer, [ref.hash])
  await client.libp2p.dial(server.libp2p.getMultiaddrs()[0]!)
  return { server, client, ref }
}

function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

async function leftovers (store: BlobStore): Promise<string[]> {
  return await readdir(join(store.dir, 'tmp'))
}

describe('blob fetch over real libp2p', () => {
  it('fetches a multi-MB blob whole, byte-exact, into a 0600 file', async () => {
    const bytes = randomBytes(12 * 1024 * 1024 + 17)
    const { server, client, ref } = await pair(bytes)
    const path = await client.blobs.fetch(server.peer, ref, { signal: AbortSignal.timeout(60_000) })
    expect(path).toBe(client.store.path(ref.hash))
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0)
    expect((await stat(path)).mode & 0o777).toBe(0o600)
    expect(await leftovers(client.store)).toEqual([])
    // already here: no second transfer
    await client.blobs.fetch(server.peer, ref)
    expect(server.served()).toBe(1)
  })

  it('fetches a byte range as a blob of its own, under the range\'s hash', async () => {
    const bytes = randomBytes(3 * 1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    const slice = bytes.subarray(1_000_001, 2_500_000)
    const range = { start: 1_000_001, end: 2_500_000, hash: sha256(slice) }
    const path = await client.blobs.fetch(server.peer, { hash: ref.hash, range }, { signal: AbortSignal.timeout(60_000) })
    expect(path).toBe(client.store.path(range.hash))
    expect(Buffer.compare(await readFile(path), slice)).toBe(0)
    expect(await client.store.has(ref.hash)).toBe(false)
  })

  it('cuts a range locally, without the network, when the whole blob is already here', async () => {
    const bytes = randomBytes(1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    await client.blobs.fetch(server.peer, ref)
    const range = { start: 10, end: 500_000, hash: sha256(bytes.subarray(10, 500_000)) }
    const path = await client.blobs.fetch(server.peer, { hash: ref.hash, range })
    expect(Buffer.compare(await readFile(path), bytes.subarray(10, 500_000))).toBe(0)
    expect(server.served()).toBe(1)
  })

  it('a hash the server does not hold is not_found, and nothing is stored', async () => {
    const { server, client } = await pair(randomBytes(1000))
    const missing = sha256(Buffer.from('nobody has this'))
    server.access.grant('campaign-1', client.peer, [missing])
    await expect(client.blobs.fetch(server.peer, { hash: missing })).rejects.toMatchObject({
      name: 'BlobFetchError', reason: 'not_found', peer: server.peer, hash: missing, message: expect.stringContaining('does not hold')
    })
    expect(await client.store.has(missing)).toBe(false)
    expect(await leftovers(client.store)).toEqual([])
  })

  it('a peer without a grant is not_authorized; a trusted peer needs none; revoking withdraws a grant', async () => {
    const { server, client, ref } = await pair(randomBytes(1000), { grant: false })
    await expect(client.blobs.fetch(server.peer, ref)).rejects.toMatchObject({
      name: 'BlobFetchError', reason: 'not_authorized', message: expect.stringContaining(client.peer)
    })
    expect(server.served()).toBe(0)
    expect(await client.store.has(ref.hash)).toBe(false)

    const trusting = new BlobService({ libp2p: server.libp2p, store: server.store, access: new BlobAccess(p => p === client.peer), log: silentLogger() })
    await server.blobs.stop()
    await trusting.start()
    await client.blobs.fetch(server.peer, ref)
    expect(await client.store.has(ref.hash)).toBe(true)
    await trusting.stop()
  })

  it('rejects a blob whose bytes the server corrupted after storing it, and stores nothing', async () => {
    const bytes = randomBytes(2 * 1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    const corrupt = Buffer.from(bytes)
    corrupt.writeUInt8(corrupt.readUInt8(1_234_567) ^ 0x01, 1_234_567)
    await writeFile(server.store.path(ref.hash), corrupt)
    const err = await client.blobs.fetch(server.peer, ref).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'BlobFetchError', reason: 'hash_mismatch', hash: ref.hash, peer: server.peer })
    expect((err as Error).message).toContain(sha256(corrupt))
    expect(await client.store.has(ref.hash)).toBe(false)
    expect(await leftovers(client.store)).toEqual([])
  })

  it('refuses a blob over the client\'s maxBytes before any byte of it is sent', async () => {
    const { server, client, ref } = await pair(randomBytes(4 * 1024 * 1024))
    // the size unknown to the caller: the server is told the limit, and refuses from the header
    await expect(client.blobs.fetch(server.peer, { hash: ref.hash }, { maxBytes: 1024 * 1024 })).rejects.toMatchObject({
      name: 'BlobFetchError', reason: 'too_large', message: expect.stringContaining(String(1024 * 1024))
    })
    // the size known: refused without asking
    await expect(client.blobs.fetch(server.peer, ref, { maxBytes: 1024 * 1024 })).rejects.toMatchObject({ name: 'BlobFetchError', reason: 'too_large' })
    expect(await client.store.has(ref.hash)).toBe(false)
    expect(await leftovers(client.store)).toEqual([])
  })

  it('moves a multi-MB blob byte-exact over a private network (PSK), past the pnet chunk bug', async () => {
    const psk = new Uint8Array(95)
    generateKey(psk)
    const bytes = randomBytes(24 * 1024 * 1024 + 5)
    const { server, client, ref } = await pair(bytes, { psk })
    const path = await client.blobs.fetch(server.peer, ref, { signal: AbortSignal.timeout(60_000) })
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0)
    const range = { start: 7, end: 9 * 1024 * 1024, hash: sha256(bytes.subarray(7, 9 * 1024 * 1024)) }
    await client.store.remove(ref.hash)
    expect(Buffer.compare(await readFile(await client.blobs.fetch(server.peer, { hash: ref.hash, range })), bytes.subarray(7, 9 * 1024 * 1024))).toBe(0)
  })

  it('concurrent fetches of one hash share a single transfer', async () => {
    const bytes = randomBytes(8 * 1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    const paths = await Promise.all(Array.from({ length: 5 }, async () => await client.blobs.fetch(server.peer, ref, { signal: AbortSignal.timeout(60_000) })))
    expect(new Set(paths).size).toBe(1)
    expect(server.served()).toBe(1)
    expect(Buffer.compare(await readFile(paths[0]!), bytes)).toBe(0)
  })

  it('a caller giving up leaves a shared transfer to the others; the last one leaving stops it, with nothing stored', async () => {
    const bytes = randomBytes(16 * 1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    const impatient = new AbortController()
    const first = client.blobs.fetch(server.peer, ref, { signal: impatient.signal })
    const second = client.blobs.fetch(server.peer, ref, { signal: AbortSignal.timeout(60_000) })
    impatient.abort(new Error('changed my mind'))
    await expect(first).rejects.toThrow('changed my mind')
    expect(Buffer.compare(await readFile(await second), bytes)).toBe(0)
    expect(server.served()).toBe(1)

    await client.store.remove(ref.hash)
    const alone = new AbortController()
    // cut it mid-body: as the first bytes reach the client's disk
    const createWriter = client.store.createWriter.bind(client.store)
    vi.spyOn(client.store, 'createWriter').mockImplementationOnce(async (opts) => {
      const writer = await createWriter(opts)
      alone.abort(new Error('stop'))
      return writer
    })
    await expect(client.blobs.fetch(server.peer, ref, { signal: alone.signal })).rejects.toThrow('stop')
    await vi.waitFor(async () => { expect(await leftovers(client.store)).toEqual([]) }, { timeout: 30_000 })
    expect(await client.store.has(ref.hash)).toBe(false)
    // the server carries on serving
    await client.blobs.fetch(server.peer, ref, { signal: AbortSignal.timeout(60_000) })
    expect(await client.store.has(ref.hash)).toBe(true)
  })

  it('a client whose disk is slower than the network pauses the stream, even right after resuming, instead of overflowing it', async () => {
    const bytes = randomBytes(32 * 1024 * 1024)
    const { server, client, ref } = await pair(bytes)
    let stream: Stream | undefined
    let maxBuffered = 0
    // a disk that lets the network run ahead: each write waits until the paused stream holds more than
    // the client's high-water mark (so resuming delivers it all in one go, and the client must pause again
    // at once), then a while longer, time enough for a stream the muxer wrongly kept open to overflow
    const slowSink: BlobSink = {
      has: async (h) => await client.store.has(h),
      path: (h) => client.store.path(h),
      createWriter: async (opts) => {
        const writer = await client.store.createWriter(opts)
        const write = writer.write.bind(writer)
        writer.write = async (chunks) => {
          await vi.waitFor(() => {
            maxBuffered = Math.max(maxBuffered, stream!.readBufferLength)
            if (stream!.readBufferLength <= CLIENT_HIGH_WATER_BYTES + 512 * 1024 && stream!.remoteWriteStatus === 'writable') throw new Error('not yet')
          }, { timeout: 30_000, interval: 2 })
          await delay(150)
          maxBuffered = Math.max(maxBuffered, stream!.readBufferLength)
          await write(chunks)
        }
        return writer
      }
    }
    const path = await fetchBlob(async (signal) => {
      stream = await client.libp2p.dialProtocol(server.libp2p.peerId, BLOB_PROTOCOL, { signal })
      return stream
    }, { peer: server.peer, ...ref, maxBytes: 1 << 30, signal: AbortSignal.timeout(80_000) }, slowSink)
    expect(Buffer.compare(await readFile(path), bytes)).toBe(0)
    expect(maxBuffered).toBeGreaterThan(CLIENT_HIGH_WATER_BYTES)
    // paused means the sender stalls within one muxer window
    expect(maxBuffered).toBeLessThanOrEqual(STREAM_WINDOW_BYTES + CLIENT_HIGH_WATER_BYTES)
  })
})
