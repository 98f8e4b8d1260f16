import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { multiaddr } from '@multiformats/multiaddr'
import { STREAM_WINDOW_BYTES } from '../../node/libp2p.ts'
import { INBOUND_HIGH_WATER } from '../../protocols/actor/constants.ts'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
afterEach(async () => { await mesh?.stop(); mesh = undefined })

describe('backpressure over real libp2p', () => {
  it('a stalled remote actor stalls its sender after a bounded number of messages, and nothing is lost', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    await waitForPeers(a, [b])
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const received: number[] = []
    b.host.spawn('slow', {
      access: 'public',
      schema: z.object({ i: z.number(), pad: z.string() }),
      mailboxSize: 8,
      create: () => ({ async receive (m) { await gate; received.push(m.i) } })
    })
    const slow = { peer: b.peerId, name: 'slow' }
    const pad = 'x'.repeat(2048)
    let sent = 0
    let stalled: unknown
    for (; sent < 5000; sent++) {
      try {
        await a.host.tell(slow, { i: sent, pad }, { timeoutMs: 3000 })
      } catch (err) {
        stalled = err
        break
      }
    }
    expect(stalled).toMatchObject({ name: 'MailboxFullError' })
    // in flight: at most one muxer window, plus the handler's small queue and the mailbox
    expect(sent).toBeGreaterThan(8)
    expect(sent).toBeLessThan(Math.ceil(STREAM_WINDOW_BYTES / pad.length) + INBOUND_HIGH_WATER + 8 + 16)
    release()
    for (let i = sent; i < sent + 100; i++) await a.host.tell(slow, { i, pad }, { timeoutMs: 30_000 })
    await expect.poll(() => received.length, { timeout: 30_000 }).toBe(sent + 100)
    expect(received).toEqual(Array.from({ length: sent + 100 }, (_, i) => i))
  })
})

describe('pausing right after resuming', () => {
  it('a reader slower than the network loses nothing, even when a resume delivers a whole window at once', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    await waitForPeers(a, [b])
    const received: number[] = []
    b.host.spawn('sink', {
      access: 'public',
      schema: z.object({ i: z.number(), pad: z.string() }),
      mailboxSize: 8,
      // slower than the network: every message costs an event-loop turn
      create: () => ({ async receive (m) { await new Promise(resolve => setImmediate(resolve)); received.push(m.i) } })
    })
    const sink = { peer: b.peerId, name: 'sink' }
    const pad = 'y'.repeat(2048)
    // 20 MB: more than a muxer window plus the 8 MiB read buffer, so a pause that does not reach
    // yamux (the stream keeps granting window) ends in a reset and lost messages
    const total = 10_000
    for (let i = 0; i < total; i++) await a.host.tell(sink, { i, pad }, { timeoutMs: 60_000 })
    await expect.poll(() => received.length, { timeout: 60_000 }).toBe(total)
    expect(received.every((v, i) => v === i)).toBe(true)
  })
})
