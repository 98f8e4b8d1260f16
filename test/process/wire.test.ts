import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import * as varint from 'uint8-varint'
import { ACTOR_PROTOCOL, MAX_FRAME_BYTES } from '../../protocols/actor/constants.ts'
import { ResponseSchema, type Response } from '../../protocols/actor/schema.ts'
import { decode, encode } from '../../protocols/common/codec.ts'
import { FrameDecoder, frame } from '../../protocols/common/framing.ts'
import { createMeshLibp2p, type MeshLibp2p } from '../../node/libp2p.ts'
import { generatePskFile } from '../../node/psk.ts'
import { createMesh, type Mesh } from '../mesh/harness.ts'
import { waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, waitForStates, type ProcessMesh } from './harness.ts'

/** A raw actor-protocol stream to the node under test, reading replies as they come. */
async function rawStream (client: MeshLibp2p, target: string): Promise<{ stream: Stream, replies: Response[], closed: Promise<void> }> {
  const stream = await client.dialProtocol(multiaddr(target), ACTOR_PROTOCOL)
  const decoder = new FrameDecoder(MAX_FRAME_BYTES)
  const replies: Response[] = []
  stream.addEventListener('message', (evt) => {
    for (const f of decoder.push(evt.data)) replies.push(ResponseSchema.parse(decode(f)))
  })
  const closed = new Promise<void>(resolve => stream.addEventListener('close', () => { resolve() }))
  return { stream, replies, closed }
}

describe('the actor protocol against a real zp-node process', () => {
  let mesh: ProcessMesh
  let target: string
  let client: MeshLibp2p

  beforeAll(async () => {
    mesh = await createProcessMesh()
    const node = await mesh.start('target')
    target = node.info!.multiaddrs[0]!
    client = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    await client.start()
  })
  afterAll(async () => {
    await client?.stop()
    await mesh?.stop()
  })

  async function stillServes (): Promise<void> {
    const { stream, replies } = await rawStream(client, target)
    stream.send(frame(encode({ v: 1, id: 7, kind: 'ask', to: 'membership', body: { type: 'advert' } })))
    const reply = await waitFor(() => replies.find(r => r.id === 7), { timeoutMs: 20_000, what: 'advert reply' })
    expect(reply.status).toBe('ok')
    expect((reply.body as { name?: string }).name).toBe('target')
    await stream.close()
  }

  it('answers a garbled frame (not msgpack) with invalid_message and keeps the stream', async () => {
    const { stream, replies } = await rawStream(client, target)
    stream.send(frame(new Uint8Array([0xc1, 0xff, 0x00, 0x13])))
    stream.send(frame(encode({ v: 1, id: 3, kind: 'ask', to: 'membership', body: { type: 'advert' } })))
    await waitFor(() => replies.length >= 2, { what: 'two replies' })
    expect(replies[0]).toMatchObject({ id: 0, status: 'invalid_message' })
    expect(replies[1]).toMatchObject({ id: 3, status: 'ok' })
    await stream.close()
  })

  it('names the bad field of an invalid envelope, and refuses a newer envelope version', async () => {
    const { stream, replies } = await rawStream(client, target)
    stream.send(frame(encode({ v: 1, id: 4, kind: 'shout', to: 'membership', body: {} })))
    stream.send(frame(encode({ v: 2, id: 5, kind: 'ask', to: 'membership', body: {} })))
    stream.send(frame(encode({ v: 1, id: 6, kind: 'ask', to: 'membership', body: { type: 'hello', advert: { nope: true } } })))
    await waitFor(() => replies.length >= 3, { what: 'three replies' })
    expect(replies.find(r => r.id === 4)).toMatchObject({ status: 'invalid_message', message: expect.stringContaining('kind') })
    expect(replies.find(r => r.id === 5)).toMatchObject({ status: 'unsupported_version', message: expect.stringContaining('v1') })
    expect(replies.find(r => r.id === 6)).toMatchObject({ status: 'invalid_message', message: expect.stringContaining('advert') })
    await stream.close()
  })

  it('refuses an oversized frame from its length prefix and closes that stream only', async () => {
    const { stream, replies, closed } = await rawStream(client, target)
    const huge = MAX_FRAME_BYTES * 8
    const prefix = varint.encode(huge)
    stream.send(prefix)
    stream.send(new Uint8Array(64 * 1024)) // the start of the body; the node must not wait for the rest
    await closed
    expect(replies[0]).toMatchObject({ id: 0, status: 'frame_too_large' })
    expect(replies[0]?.message).toContain(String(huge))
    await stillServes()
  })

  it('survives a truncated frame (stream closed mid-frame) and logs it', async () => {
    const { stream } = await rawStream(client, target)
    const whole = frame(encode({ v: 1, id: 9, kind: 'tell', to: 'membership', body: { type: 'advert' } }))
    stream.send(whole.subarray(0, Math.floor(whole.byteLength / 2)))
    await stream.close()
    const node = mesh.nodes[0]!
    await waitFor(async () => (await logLines(node)).some(l => String(l.msg).includes('middle of a frame')), { what: 'truncation log line' })
    await stillServes()
  })

  it('refuses an untrusted peer on privileged actors but serves it on public ones', async () => {
    const { stream, replies } = await rawStream(client, target)
    stream.send(frame(encode({ v: 1, id: 11, kind: 'ask', to: 'system', body: { type: 'info' } })))
    stream.send(frame(encode({ v: 1, id: 12, kind: 'ask', to: 'nobody-here', body: {} })))
    await waitFor(() => replies.length >= 2, { what: 'two replies' })
    const refused = replies.find(r => r.id === 11)
    expect(refused).toMatchObject({ status: 'not_authorized' })
    expect(refused?.message).toContain(client.peerId.toString())
    expect(replies.find(r => r.id === 12)).toMatchObject({ status: 'no_such_actor' })
    await stream.close()
    await stillServes()
  })
})

describe('trust and private networks across processes', () => {
  let procs: ProcessMesh | undefined
  let inproc: Mesh | undefined
  afterAll(async () => {
    await inproc?.stop()
    await procs?.stop()
  })

  it('a node started with --trust serves that peer; the peer it joined through is trusted too', async () => {
    procs = await createProcessMesh()
    inproc = await createMesh()
    const friend = await inproc.start({ name: 'friend' })
    const host = await procs.start('host', { args: ['--trust', friend.peerId] })
    const joiner = await procs.start('joiner', { via: host })
    await waitForStates(procs, host, ['joiner'], 'alive')
    await friend.libp2p.dial(multiaddr(host.info!.multiaddrs[0]!))
    const info = await friend.host.ask<{ name: string }>({ peer: host.info!.peerId, name: 'system' }, { type: 'info' })
    expect(info.name).toBe('host')
    // joiner trusts host (it joined through it), not friend
    await friend.libp2p.dial(multiaddr(joiner.info!.multiaddrs[0]!))
    await expect(friend.host.ask({ peer: joiner.info!.peerId, name: 'system' }, { type: 'info' })).rejects.toMatchObject({ name: 'NotAuthorizedError' })
  })

  it('nodes with different pre-shared keys cannot connect, and the joiner says why', async () => {
    procs ??= await createProcessMesh()
    const keyA = join(procs.root, 'a.key')
    const keyB = join(procs.root, 'b.key')
    await generatePskFile(keyA)
    await generatePskFile(keyB)
    const a = await procs.start('psk-a', { args: ['--psk', keyA] })
    const sameKey = await procs.start('psk-same', { via: a, args: ['--psk', keyA] })
    await waitForStates(procs, a, ['psk-same'], 'alive')
    const other = await procs.start('psk-other', { via: a, args: ['--psk', keyB] })
    await waitFor(async () => (await logLines(other)).some(l => /different pre-shared key/.test(String(l.err ?? l.msg))), {
      timeoutMs: 60_000, what: 'the joiner to explain the key mismatch'
    })
    const seen = await procs.peers(a)
    expect(seen.map(p => p.name)).not.toContain('psk-other')
    expect(seen.find(p => p.name === 'psk-same')?.state).toBe('alive')
    expect(sameKey.info?.peerId).toBeDefined()
  })

  it('refuses a malformed key file with a message naming the fix', async () => {
    procs ??= await createProcessMesh()
    const bad = join(procs.root, 'bad.key')
    await writeFile(bad, 'not a key\n')
    await expect(procs.start('bad-key', { args: ['--psk', bad] })).rejects.toThrow(/not a libp2p swarm key.*psk generate/s)
  })
})
