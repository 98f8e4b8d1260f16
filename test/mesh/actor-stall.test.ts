import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { pino, type Logger } from 'pino'
import * as varint from 'uint8-varint'
import { z } from 'zod'
import { ActorHost } from '../../actors/runtime/host.ts'
import { createMeshLibp2p, type MeshLibp2p } from '../../node/libp2p.ts'
import { ACTOR_PROTOCOL, MAX_FRAME_BYTES } from '../../protocols/actor/constants.ts'
import { ResponseSchema, type Response } from '../../protocols/actor/schema.ts'
import { ActorTransport } from '../../protocols/actor/transport.ts'
import { decode, encode } from '../../protocols/common/codec.ts'
import { FrameDecoder, frame } from '../../protocols/common/framing.ts'
import { delay } from '../../protocols/common/signals.ts'
import { waitFor } from '../helpers.ts'

// Real libp2p over loopback TCP; the peer that stalls is played with raw streams.

/** the frame timeout the nodes under test run with (FRAME_READ_TIMEOUT_MS, shortened) */
const FRAME_TIMEOUT_MS = 400

interface ActorNode {
  libp2p: MeshLibp2p
  host: ActorHost
  peer: string
  /** what the node logged, parsed */
  logs: Array<Record<string, unknown>>
}

const started: MeshLibp2p[] = []
afterEach(async () => {
  for (const l of started.splice(0)) await l.stop()
})

async function startLibp2p (): Promise<MeshLibp2p> {
  const libp2p = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  started.push(libp2p)
  await libp2p.start()
  return libp2p
}

/** A node serving the actor protocol through the real transport, with an `echo` actor. */
async function startActorNode (): Promise<ActorNode> {
  const libp2p = await startLibp2p()
  const peer = libp2p.peerId.toString()
  const logs: Array<Record<string, unknown>> = []
  const log: Logger = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } })
  const transport = new ActorTransport(async (to, signal) => await libp2p.dialProtocol(peerIdFromString(to), ACTOR_PROTOCOL, { signal }), log, { frameTimeoutMs: FRAME_TIMEOUT_MS })
  const host = new ActorHost({ self: peer, logger: log, trust: { isTrusted: () => false }, transport })
  host.spawn('echo', { access: 'public', schema: z.string(), create: () => ({ receive: (m: string) => m }) })
  await libp2p.handle(ACTOR_PROTOCOL, (stream, connection) => { transport.accept(stream, connection.remotePeer.toString(), host) })
  return { libp2p, host, peer, logs }
}

interface RawStream {
  stream: Stream
  replies: Response[]
  /** the close event's error: set when the stream was reset */
  closed: Promise<Error | undefined>
}

function watch (stream: Stream): RawStream {
  const decoder = new FrameDecoder(MAX_FRAME_BYTES)
  const replies: Response[] = []
  stream.addEventListener('message', (evt) => {
    for (const f of decoder.push(evt.data)) replies.push(ResponseSchema.parse(decode(f)))
  })
  const closed = new Promise<Error | undefined>(resolve => { stream.addEventListener('close', (evt) => { resolve(evt.error) }) })
  return { stream, replies, closed }
}

async function rawStream (client: MeshLibp2p, target: MeshLibp2p): Promise<RawStream> {
  return watch(await client.dialProtocol(target.getMultiaddrs()[0]!, ACTOR_PROTOCOL))
}

function ask (id: number, body: string): Uint8Array {
  return frame(encode({ v: 1, id, kind: 'ask', to: 'echo', body }))
}

async function askOn (raw: RawStream, id: number, body: string): Promise<Response> {
  raw.stream.send(ask(id, body))
  return await waitFor(() => raw.replies.find(r => r.id === id), { timeoutMs: 10_000, what: `the reply to ask ${id}` })
}

describe('a frame that stalls mid-way on /zp/actor', () => {
  it('the receiving node resets the stream after the frame timeout, names the peer, and keeps serving', async () => {
    const node = await startActorNode()
    const client = await startLibp2p()
    const stalled = await rawStream(client, node.libp2p)
    const other = await rawStream(client, node.libp2p)
    // a whole ask first: the stream works, then a frame announced at 100 bytes of which 5 come
    expect(await askOn(stalled, 1, 'before')).toMatchObject({ status: 'ok', body: 'before' })
    const began = performance.now()
    stalled.stream.send(varint.encode(100))
    stalled.stream.send(new Uint8Array(5))
    // while that stream stalls, another stream of the same peer is served
    expect(await askOn(other, 2, 'meanwhile')).toMatchObject({ status: 'ok', body: 'meanwhile' })

    await waitFor(() => stalled.stream.status === 'reset', { timeoutMs: FRAME_TIMEOUT_MS * 10, intervalMs: 20, what: 'the stalled stream to be reset' })
    expect(performance.now() - began).toBeGreaterThanOrEqual(FRAME_TIMEOUT_MS - 50)
    expect(await stalled.closed).toBeInstanceOf(Error)
    expect(stalled.replies.find(r => r.id === 0)).toMatchObject({ status: 'timeout', message: expect.stringContaining('stalled') })
    expect(node.logs.find(l => l.status === 'timeout')).toMatchObject({ level: 40, peer: client.peerId.toString() })

    expect(other.stream.status).toBe('open')
    expect(await askOn(other, 3, 'after')).toMatchObject({ status: 'ok', body: 'after' })
    expect(await askOn(await rawStream(client, node.libp2p), 4, 'fresh')).toMatchObject({ status: 'ok', body: 'fresh' })
  })

  it('a stream idle between whole frames for longer than the frame timeout is not reset', async () => {
    const node = await startActorNode()
    const client = await startLibp2p()
    const raw = await rawStream(client, node.libp2p)
    expect(await askOn(raw, 1, 'one')).toMatchObject({ status: 'ok', body: 'one' })
    // time passing is what is tested here: no condition to poll for
    await delay(FRAME_TIMEOUT_MS * 3)
    expect(raw.stream.status).toBe('open')
    // a frame split in two pieces, each well inside the timeout, is not a stall either
    const two = ask(2, 'two')
    raw.stream.send(two.subarray(0, 3))
    await delay(FRAME_TIMEOUT_MS / 4)
    raw.stream.send(two.subarray(3))
    expect(await askOn(raw, 3, 'three')).toMatchObject({ status: 'ok', body: 'three' })
    expect(raw.replies.map(r => r.id)).toEqual([1, 2, 3])
    expect(raw.stream.status).toBe('open')
    expect(node.logs.filter(l => l.status === 'timeout')).toEqual([])
  })

  it('an asking node resets a stream whose reply stalls: the ask fails as unreachable and the next one gets a fresh stream', async () => {
    const node = await startActorNode()
    const peer = await startLibp2p()
    // the peer answers its first stream with a reply prefix and 3 bytes of it, then nothing; later streams properly
    let streams = 0
    await peer.handle(ACTOR_PROTOCOL, (stream) => {
      const first = ++streams === 1
      const decoder = new FrameDecoder(MAX_FRAME_BYTES)
      stream.addEventListener('message', (evt) => {
        for (const f of decoder.push(evt.data)) {
          const { id, body } = decode(f) as { id: number, body: unknown }
          if (first) stream.send(frame(encode({ v: 1, id, status: 'ok', body })).subarray(0, 4))
          else stream.send(frame(encode({ v: 1, id, status: 'ok', body })))
        }
      })
    })
    await node.libp2p.dial(peer.getMultiaddrs()[0]!)
    const target = { peer: peer.peerId.toString(), name: 'anyone' }
    const began = performance.now()
    await expect(node.host.ask(target, 'hello', { timeoutMs: 20_000 })).rejects.toMatchObject({ name: 'PeerUnreachableError', message: expect.stringContaining('stalled') })
    expect(performance.now() - began).toBeLessThan(FRAME_TIMEOUT_MS * 10)
    expect(node.logs.find(l => String(l.err).includes('stalled'))).toMatchObject({ level: 40, peer: target.peer })
    expect(await node.host.ask(target, 'again', { timeoutMs: 10_000 })).toBe('again')
    expect(streams).toBe(2)
  })
})
