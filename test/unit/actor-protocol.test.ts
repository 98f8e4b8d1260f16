import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { streamPair } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { ActorHost } from '../../actors/runtime/host.ts'
import { ActorTransport } from '../../protocols/actor/transport.ts'
import { silentLogger } from '../../node/logger.ts'

/**
 * Two hosts joined by an in-memory stream pair: the real channel and handler,
 * no libp2p node. `cut()` kills the streams like a lost connection.
 */
async function linkedHosts (opts: { trustA?: boolean } = {}): Promise<{ a: ActorHost, b: ActorHost, cut: () => void }> {
  const log = silentLogger()
  const streams: Stream[] = []
  let b!: ActorHost
  const transportA = new ActorTransport(async () => {
    const [outbound, inbound] = await streamPair()
    streams.push(outbound, inbound)
    transportB.accept(inbound, 'A', b)
    return outbound
  }, log)
  const transportB = new ActorTransport(async () => { throw new Error('B never dials in these tests') }, log)
  const a = new ActorHost({ self: 'A', logger: log, trust: { isTrusted: () => false }, transport: transportA })
  b = new ActorHost({ self: 'B', logger: log, trust: { isTrusted: p => opts.trustA === true && p === 'A' }, transport: transportB })
  return { a, b, cut: () => { for (const s of streams) s.abort(new Error('connection lost')) } }
}

describe('actor protocol over a stream pair', () => {
  it('delivers tells to a remote actor in order and answers asks', async () => {
    const { a, b } = await linkedHosts()
    const seen: number[] = []
    b.spawn('sink', { access: 'public', schema: z.number(), create: () => ({ receive: (n: number) => { seen.push(n); return seen.length } }) })
    const sink = { peer: 'B', name: 'sink' }
    await Promise.all(Array.from({ length: 500 }, async (_, i) => { await a.tell(sink, i) }))
    expect(await a.ask(sink, 500)).toBe(501)
    expect(seen).toEqual(Array.from({ length: 501 }, (_, i) => i))
  })

  it('re-raises remote refusals as the same typed errors', async () => {
    const { a, b } = await linkedHosts()
    b.spawn('vault', { access: 'trusted', schema: z.string(), create: () => ({ receive: () => 'secret' }) })
    b.spawn('strict', { access: 'public', schema: z.object({ n: z.number() }), create: () => ({ receive: () => 'ok' }) })
    b.spawn('broken', { access: 'public', schema: z.string(), create: () => ({ receive: () => { throw new Error('disk on fire') } }) })
    await expect(a.ask({ peer: 'B', name: 'vault' }, 'x')).rejects.toMatchObject({ name: 'NotAuthorizedError' })
    await expect(a.ask({ peer: 'B', name: 'ghost' }, 'x')).rejects.toMatchObject({ name: 'NoSuchActorError' })
    await expect(a.ask({ peer: 'B', name: 'strict' }, { n: 'one' })).rejects.toMatchObject({ name: 'InvalidMessageError', message: expect.stringContaining('n:') })
    await expect(a.ask({ peer: 'B', name: 'broken' }, 'x')).rejects.toMatchObject({ name: 'ActorFailedError', message: expect.stringContaining('disk on fire') })
    expect(await a.ask({ peer: 'B', name: 'strict' }, { n: 1 })).toBe('ok')
  })

  it('lets a trusted peer through to a privileged actor', async () => {
    const { a, b } = await linkedHosts({ trustA: true })
    b.spawn('vault', { access: 'trusted', schema: z.string(), create: () => ({ receive: (m: string, meta) => `${m} for ${meta.from}` }) })
    expect(await a.ask({ peer: 'B', name: 'vault' }, 'secret')).toBe('secret for A')
  })

  it('refuses messages over the frame limit before sending them', async () => {
    const { a, b } = await linkedHosts()
    b.spawn('sink', { access: 'public', schema: z.unknown(), create: () => ({ receive: () => 'ok' }) })
    await expect(a.ask({ peer: 'B', name: 'sink' }, 'x'.repeat(300 * 1024))).rejects.toMatchObject({ name: 'FrameTooLargeError', message: expect.stringContaining('blob') })
  })

  it('fails asks in flight with PeerUnreachableError when the connection dies, then reconnects', async () => {
    const { a, b, cut } = await linkedHosts()
    let holding = false
    b.spawn('hang', {
      access: 'public',
      schema: z.string(),
      create: () => ({ receive: async (m: string) => { if (m !== 'hang') return m; holding = true; return await new Promise(() => {}) } })
    })
    expect(await a.ask({ peer: 'B', name: 'hang' }, 'hello')).toBe('hello')
    const pending = a.ask({ peer: 'B', name: 'hang' }, 'hang')
    await expect.poll(() => holding).toBe(true)
    cut()
    await expect(pending).rejects.toMatchObject({ name: 'PeerUnreachableError' })
    // the next request opens a fresh stream ('hang' itself is still stuck on its message)
    b.spawn('echo', { access: 'public', schema: z.string(), create: () => ({ receive: (m: string) => m }) })
    expect(await a.ask({ peer: 'B', name: 'echo' }, 'back')).toBe('back')
  })

  it('cancels a timed-out remote ask: the receiver skips it, or sees meta.signal fire if it already runs', async () => {
    const { a, b } = await linkedHosts()
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const handled: string[] = []
    let runningSignal: AbortSignal | undefined
    b.spawn('busy', {
      access: 'public',
      schema: z.string(),
      create: () => ({
        async receive (m: string, meta) {
          if (m === 'first') { runningSignal = meta.signal; await gate }
          handled.push(m)
          return m
        }
      })
    })
    b.spawn('other', { access: 'public', schema: z.string(), create: () => ({ receive: (m: string) => m }) })
    const first = a.ask({ peer: 'B', name: 'busy' }, 'first', { timeoutMs: 300 })
    await expect(a.ask({ peer: 'B', name: 'busy' }, 'impatient', { timeoutMs: 50 })).rejects.toMatchObject({ name: 'AskTimeoutError' })
    await expect(first).rejects.toMatchObject({ name: 'AskTimeoutError' })
    // one round trip on the same stream: the cancel frames sent before it have been read
    expect(await a.ask({ peer: 'B', name: 'other' }, 'sync')).toBe('sync')
    expect(runningSignal?.aborted).toBe(true)
    release()
    expect(await a.ask({ peer: 'B', name: 'busy' }, 'last')).toBe('last')
    expect(handled).toEqual(['first', 'last'])
  })
})
