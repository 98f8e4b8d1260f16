import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { streamPair } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { Uint8ArrayList } from 'uint8arraylist'
import { BlobStore } from '../../node/blobs/store.ts'
import { silentLogger } from '../../node/logger.ts'
import { fetchBlob } from '../../protocols/blob/client.ts'
import { handleBlobStream } from '../../protocols/blob/handler.ts'
import { BlobResponseSchema, type BlobResponse } from '../../protocols/blob/schema.ts'
import { decode, decodeAs, encode } from '../../protocols/common/codec.ts'
import { FrameDecoder, frame } from '../../protocols/common/framing.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
let store: BlobStore
beforeEach(async () => {
  dir = await tempDir('zp-blob-proto-')
  store = await BlobStore.open(join(dir.path, 'blobs'))
})
afterEach(async () => { await dir.remove() })

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** The real handler on one end of an in-memory stream pair; `authorize` decides access. */
async function served (authorize: (peer: string, hash: string) => boolean = () => true): Promise<Stream> {
  const [client, server] = await streamPair()
  void handleBlobStream(server, 'peer-A', { source: store, authorize, log: silentLogger() })
  return client
}

/** Sends raw request bytes, half-closes, and reads the whole answer: the header and the body. */
async function exchange (stream: Stream, payload: Uint8Array): Promise<{ header: BlobResponse, body: Uint8Array }> {
  const all = new Uint8ArrayList()
  const ended = new Promise<void>(resolve => { stream.addEventListener('end', () => { resolve() }) })
  stream.addEventListener('message', (evt) => { all.append(evt.data) })
  stream.send(frame(payload))
  await stream.close()
  await ended
  const decoder = new FrameDecoder(4096)
  const first = new Uint8ArrayList(all)
  const [headerBytes] = decoder.push(first)
  const header = decodeAs(BlobResponseSchema, headerBytes!, 'header')
  return { header, body: all.subarray(all.byteLength - (header.status === 'ok' ? header.size : 0)) }
}

/** A misbehaving server: answers whatever `answer` writes, then closes its side. */
async function rogue (answer: (stream: Stream) => void | Promise<void>): Promise<Stream> {
  const [client, server] = await streamPair()
  server.addEventListener('message', () => {
    void (async () => {
      await answer(server)
      await server.close().catch(() => {})
    })()
  }, { once: true })
  return client
}

const okHeader = (size: number): Uint8Array => frame(encode({ v: 1, status: 'ok', size }))

describe('the blob server', () => {
  it('serves a whole blob and a range of it', async () => {
    const bytes = randomBytes(700 * 1024)
    const ref = await store.putBytes(bytes, 'x')
    const whole = await exchange(await served(), encode({ v: 1, hash: ref.hash }))
    expect(whole.header).toEqual({ v: 1, status: 'ok', size: bytes.length })
    expect(Buffer.compare(whole.body, bytes)).toBe(0)
    const part = await exchange(await served(), encode({ v: 1, hash: ref.hash, start: 5, end: 300_000 }))
    expect(part.header).toEqual({ v: 1, status: 'ok', size: 299_995 })
    expect(Buffer.compare(part.body, bytes.subarray(5, 300_000))).toBe(0)
  })

  it('answers bad requests with a status that names the problem', async () => {
    const ref = await store.putBytes(randomBytes(100), 'x')
    const cases: Array<[Uint8Array, BlobResponse['status'], string]> = [
      [new Uint8Array([0xc1, 0xff]), 'invalid', 'msgpack'],
      [encode({ hash: ref.hash }), 'invalid', '"v"'],
      [encode({ v: 2, hash: ref.hash }), 'unsupported_version', 'v1'],
      [encode({ v: 1, hash: '../../etc/passwd' }), 'invalid', 'hash'],
      [encode({ v: 1, hash: ref.hash, start: 50, end: 101 }), 'invalid', 'outside'],
      [encode({ v: 1, hash: ref.hash, start: 60, end: 50 }), 'invalid', 'outside'],
      [encode({ v: 1, hash: ref.hash, max: 99 }), 'too_large', '99'],
      [encode({ v: 1, hash: sha256(Buffer.from('absent')) }), 'not_found', 'does not hold']
    ]
    for (const [payload, status, mention] of cases) {
      const { header } = await exchange(await served(), payload)
      expect(header).toMatchObject({ status, message: expect.stringContaining(mention) })
    }
  })

  it('asks `authorize` about the peer and the blob a range is cut from', async () => {
    const ref = await store.putBytes(randomBytes(100), 'x')
    const asked: Array<[string, string]> = []
    const { header } = await exchange(await served((peer, hash) => { asked.push([peer, hash]); return false }), encode({ v: 1, hash: ref.hash, start: 0, end: 10 }))
    expect(header).toMatchObject({ status: 'not_authorized', message: expect.stringContaining('peer-A') })
    expect(asked).toEqual([['peer-A', ref.hash]])
  })

  it('stops reading the blob when the client goes away mid-body', async () => {
    const ref = await store.putBytes(randomBytes(8 * 1024 * 1024), 'x')
    const [client, server] = await streamPair()
    const done = handleBlobStream(server, 'peer-A', { source: store, authorize: () => true, log: silentLogger() })
    client.addEventListener('message', () => { client.abort(new Error('client gone')) }, { once: true })
    client.send(frame(encode({ v: 1, hash: ref.hash })))
    await done
    expect(server.status).not.toBe('open')
  })
})

describe('fetchBlob against a misbehaving server', () => {
  const bytes = randomBytes(300 * 1024)
  const hash = sha256(bytes)
  const fetchFrom = async (stream: Stream, opts: { size?: number, maxBytes?: number } = {}): Promise<unknown> =>
    await fetchBlob(async () => stream, { peer: 'peer-B', hash, maxBytes: opts.maxBytes ?? 1 << 30, size: opts.size }, store).catch((e: unknown) => e)
  const nothingKept = async (): Promise<void> => {
    expect(await store.has(hash)).toBe(false)
    expect(await readdir(join(store.dir, 'tmp'))).toEqual([])
  }

  it('a body shorter than announced is short_body', async () => {
    const err = await fetchFrom(await rogue(s => { s.send(okHeader(bytes.length)); s.send(bytes.subarray(0, 1000)) }))
    expect(err).toMatchObject({ name: 'BlobFetchError', reason: 'short_body', peer: 'peer-B', message: expect.stringContaining(`1000 of the ${bytes.length}`) })
    await nothingKept()
  })

  it('a body longer than announced is long_body', async () => {
    const err = await fetchFrom(await rogue(s => { s.send(okHeader(1000)); s.send(bytes) }))
    expect(err).toMatchObject({ name: 'BlobFetchError', reason: 'long_body' })
    await nothingKept()
  })

  it('an announced size over maxBytes is refused from the header, even from a server that ignores the limit', async () => {
    let sent = 0
    const err = await fetchFrom(await rogue(async s => {
      s.send(okHeader(10 * 2 ** 30))
      // keeps sending until the client's reset closes the stream
      while (s.status === 'open' && sent < 64 * 1024 * 1024) {
        s.send(bytes)
        sent += bytes.length
        await new Promise(resolve => setImmediate(resolve))
      }
    }), { maxBytes: 1024 * 1024 })
    expect(err).toMatchObject({ name: 'BlobFetchError', reason: 'too_large', message: expect.stringContaining('10737418240') })
    expect(sent).toBeLessThan(64 * 1024 * 1024)
    await nothingKept()
  })

  it('a size other than the caller expects is size_mismatch', async () => {
    const err = await fetchFrom(await rogue(s => { s.send(okHeader(bytes.length)); s.send(bytes) }), { size: bytes.length + 1 })
    expect(err).toMatchObject({ name: 'BlobFetchError', reason: 'size_mismatch' })
    await nothingKept()
  })

  it('an unreadable header is a protocol error, a refusal keeps its status and message', async () => {
    expect(await fetchFrom(await rogue(s => { s.send(frame(encode({ v: 1, status: 'maybe' }))) }))).toMatchObject({ reason: 'protocol' })
    expect(await fetchFrom(await rogue(s => { s.send(frame(encode({ v: 1, status: 'not_found', message: 'gone fishing' }))) }))).toMatchObject({
      reason: 'not_found', message: expect.stringContaining('gone fishing')
    })
    expect(await fetchFrom(await rogue(() => {}))).toMatchObject({ reason: 'protocol', message: expect.stringContaining('without answering') })
    await nothingKept()
  })

  it('a server that sends its bytes in odd pieces still makes one exact blob; an empty blob works too', async () => {
    const path = await fetchFrom(await rogue(s => {
      const all = Buffer.concat([okHeader(bytes.length), bytes])
      for (let i = 0; i < all.length; i += 7777) s.send(all.subarray(i, i + 7777))
    }))
    expect(path).toBe(store.path(hash))
    const empty = new Uint8Array(0)
    const emptyPath = await fetchBlob(async () => await rogue(s => { s.send(okHeader(0)) }), { peer: 'peer-B', hash: sha256(empty), maxBytes: 10 }, store)
    expect(await store.size(sha256(empty))).toBe(0)
    expect(emptyPath).toBe(store.path(sha256(empty)))
  })

  it('the request names the hash, the range and the limit', async () => {
    let request: unknown
    const [client, server] = await streamPair()
    server.addEventListener('message', (evt) => { request = decode(new FrameDecoder(4096).push(evt.data).next().value!) })
    const range = { start: 1, end: 2, hash: sha256(bytes.subarray(1, 2)) }
    const fetching = fetchBlob(async () => client, { peer: 'peer-B', hash, range, maxBytes: 5000 }, store).catch((e: unknown) => e)
    await expect.poll(() => request).toEqual({ v: 1, hash, start: 1, end: 2, max: 5000 })
    server.send(okHeader(1))
    server.send(bytes.subarray(1, 2))
    await server.close()
    expect(await fetching).toBe(store.path(range.hash))
  })
})
