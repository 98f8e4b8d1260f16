import type { Socket } from 'node:net'
import { defaultLogger } from '@libp2p/logger'
import type { Listener, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKey } from '@libp2p/pnet'
import { PSK_MAX_CHUNK_BYTES, pskProtector } from '../../node/libp2p.ts'
import { corkedTcp } from '../../node/tcp-cork.ts'
import { waitFor } from '../helpers.ts'

// The real @libp2p/tcp transport over loopback, with an upgrader that hands back the raw connections.

let listener: Listener | undefined
const opened: MultiaddrConnection[] = []
afterEach(async () => {
  for (const c of opened.splice(0)) c.abort(new Error('test over'))
  await listener?.close()
  listener = undefined
})

async function rawPair (): Promise<{ client: MultiaddrConnection, server: MultiaddrConnection }> {
  const transport: Transport = corkedTcp()({ logger: defaultLogger() } as never)
  const inbound: MultiaddrConnection[] = []
  const upgrader = {
    upgradeInbound: async (c: MultiaddrConnection) => { inbound.push(c) },
    upgradeOutbound: async (c: MultiaddrConnection) => c
  } as unknown as Upgrader
  listener = transport.createListener({ upgrader })
  await listener.listen(multiaddr('/ip4/127.0.0.1/tcp/0'))
  const client = await transport.dial(listener.getAddrs()[0]!, { upgrader, signal: AbortSignal.timeout(10_000) }) as unknown as MultiaddrConnection
  const server = await waitFor(() => inbound[0], { timeoutMs: 10_000, what: 'the inbound connection' })
  opened.push(client, server)
  return { client, server }
}

/** Counts the system-call-sized writes the socket makes: one `_write` per chunk, or one `_writev` for many. */
function countWrites (socket: Socket): { writes: number, writevs: number, chunks: number } {
  const counts = { writes: 0, writevs: 0, chunks: 0 }
  const s = socket as unknown as { _write: (...a: unknown[]) => unknown, _writev: (chunks: unknown[], cb: unknown) => unknown }
  const write = s._write.bind(socket)
  const writev = s._writev.bind(socket)
  s._write = (...a) => { counts.writes++; counts.chunks++; return write(...a) }
  s._writev = (chunks, cb) => { counts.writevs++; counts.chunks += chunks.length; return writev(chunks, cb) }
  return counts
}

describe('TCP writes gathered per tick', () => {
  it('pieces sent in one tick leave in one writev, and arrive whole and in order', async () => {
    const { client, server } = await rawPair()
    const socket = (client as unknown as { socket: Socket }).socket
    const counts = countWrites(socket)
    const pieces = Array.from({ length: 20 }, (_, i) => new Uint8Array(100 + i).fill(i))
    for (const p of pieces) client.send(p)
    const expected = pieces.reduce((n, p) => n + p.byteLength, 0)
    const got: number[] = []
    for await (const chunk of server) {
      got.push(...chunk.subarray())
      if (got.length >= expected) break
    }
    expect(got).toEqual(pieces.flatMap(p => [...p]))
    expect(counts).toEqual({ writes: 0, writevs: 1, chunks: 20 })
  })

  it('a tick that gathers more than the socket\'s high-water mark is sent at once, not held to the next tick', async () => {
    const { client, server } = await rawPair()
    const socket = (client as unknown as { socket: Socket }).socket
    const counts = countWrites(socket)
    const pieces = Array.from({ length: 20 }, (_, i) => new Uint8Array(16 * 1024).fill(i))
    for (const p of pieces) client.send(p)
    // still inside the tick: what passed the high-water mark has been handed to the socket already
    expect(counts.writes + counts.writevs).toBeGreaterThanOrEqual(1)
    const expected = pieces.length * 16 * 1024
    let n = 0
    const firstBytes: number[] = []
    for await (const chunk of server) {
      const bytes = chunk.subarray()
      for (let i = 0; i < bytes.byteLength; i++) if ((n + i) % (16 * 1024) === 0) firstBytes.push(bytes[i]!)
      n += chunk.byteLength
      if (n >= expected) break
    }
    expect(n).toBe(expected)
    expect(firstBytes).toEqual(pieces.map((_, i) => i))
  })

  it('a later tick writes again: nothing waits for more data to come', async () => {
    const { client, server } = await rawPair()
    const counts = countWrites((client as unknown as { socket: Socket }).socket)
    const reader = server[Symbol.asyncIterator]()
    for (let round = 1; round <= 3; round++) {
      client.send(new Uint8Array([round]))
      const next = await reader.next()
      expect([...next.value!.subarray()]).toEqual([round])
    }
    // one piece per tick: a plain write each time
    expect(counts.writes + counts.writevs).toBe(3)
  })
})

describe('private networks (pre-shared key)', () => {
  it('a 2 MB send crosses a protected connection intact, encrypted in pieces of at most PSK_MAX_CHUNK_BYTES', async () => {
    const { client, server } = await rawPair()
    const key = new Uint8Array(95)
    generateKey(key)
    const protector = pskProtector(key)()
    const [a, b] = await Promise.all([protector.protect(client, { signal: AbortSignal.timeout(10_000) }), protector.protect(server, { signal: AbortSignal.timeout(10_000) })])
    // what the protected stream hands to the TCP connection, one encrypted piece per call
    const pieces: number[] = []
    const send = client.send.bind(client)
    client.send = (data) => { pieces.push(data.byteLength); return send(data) }
    const payload = new Uint8Array(2 * 1024 * 1024)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) % 251
    a.send(payload)
    const got = new Uint8Array(payload.length)
    let n = 0
    for await (const chunk of b) {
      got.set(chunk.subarray(), n)
      n += chunk.byteLength
      if (n >= payload.length) break
    }
    expect(n).toBe(payload.length)
    expect(Buffer.compare(got, payload)).toBe(0)
    expect(pieces.reduce((x, y) => x + y, 0)).toBe(payload.length)
    expect(Math.max(...pieces)).toBeLessThanOrEqual(PSK_MAX_CHUNK_BYTES)
  })
})
