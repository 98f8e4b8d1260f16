import type { Socket } from 'node:net'
import { defaultLogger } from '@libp2p/logger'
import type { Listener, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, it } from 'vitest'
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
