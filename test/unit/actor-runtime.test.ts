import { describe, it, expect, vi, afterEach } from 'vitest'
import { z } from 'zod'
import { ActorHost } from '../../actors/runtime/host.ts'
import { silentLogger } from '../../node/logger.ts'
import type { Behavior } from '../../actors/runtime/types.ts'
import { UnavailableError } from '../../actors/runtime/errors.ts'

const SELF = 'peer-self'
const trustNobody = { isTrusted: () => false }

function host (): ActorHost {
  return new ActorHost({ self: SELF, logger: silentLogger(), trust: trustNobody })
}

afterEach(() => { vi.useRealTimers() })

describe('actor host: delivery', () => {
  it('processes one actor\'s messages strictly in send order, one at a time', async () => {
    const h = host()
    const seen: number[] = []
    let concurrent = 0
    let maxConcurrent = 0
    const ref = h.spawn<number>('ordered', {
      create: () => ({
        async receive (n) {
          concurrent++
          maxConcurrent = Math.max(maxConcurrent, concurrent)
          // vary the work so a racing implementation would reorder
          await new Promise(resolve => setImmediate(resolve))
          if (n % 3 === 0) await Promise.resolve()
          seen.push(n)
          concurrent--
          return n * 2
        }
      })
    })
    const sends = Array.from({ length: 200 }, async (_, i) => await ref.tell(i))
    await Promise.all(sends)
    expect(await ref.ask(1000)).toBe(2000)
    expect(seen).toEqual([...Array.from({ length: 200 }, (_, i) => i), 1000])
    expect(maxConcurrent).toBe(1)
  })

  it('returns the behaviour\'s value as the reply to ask, and sees the sender as the local peer', async () => {
    const h = host()
    const ref = h.spawn<{ x: number }>('echo', { create: () => ({ receive: (m, meta) => ({ got: m.x, from: meta.from, kind: meta.kind }) }) })
    expect(await ref.ask({ x: 7 })).toEqual({ got: 7, from: SELF, kind: 'ask' })
  })

  it('rejects with NoSuchActorError for an unknown local actor', async () => {
    const h = host()
    await expect(h.ask({ peer: SELF, name: 'ghost' }, 1)).rejects.toMatchObject({ name: 'NoSuchActorError' })
  })

  it('rejects with PeerUnreachableError for another peer when there is no transport', async () => {
    const h = host()
    await expect(h.ask({ peer: 'someone-else', name: 'x' }, 1)).rejects.toMatchObject({ name: 'PeerUnreachableError' })
  })

  it('times out an ask with AskTimeoutError and frees the caller', async () => {
    vi.useFakeTimers()
    const h = host()
    const ref = h.spawn('slow', { create: () => ({ receive: async () => await new Promise(() => {}) }) })
    const p = ref.ask('x', { timeoutMs: 5000 })
    const assertion = expect(p).rejects.toMatchObject({ name: 'AskTimeoutError' })
    await vi.advanceTimersByTimeAsync(5001)
    await assertion
  })

  it('aborts an ask with AbortError when the caller\'s signal fires', async () => {
    const h = host()
    const ref = h.spawn('slow', { create: () => ({ receive: async () => await new Promise(() => {}) }) })
    const ac = new AbortController()
    const p = ref.ask('x', { signal: ac.signal })
    ac.abort()
    await expect(p).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('validates the reply against a schema when asked to', async () => {
    const h = host()
    const ref = h.spawn('liar', { create: () => ({ receive: () => ({ count: 'three' }) }) })
    await expect(ref.ask('x', { replySchema: z.object({ count: z.number() }) })).rejects.toMatchObject({ name: 'InvalidMessageError' })
  })
})

describe('actor host: bounded mailboxes', () => {
  it('makes senders wait when the mailbox is full, then lets them in as it drains', async () => {
    const h = host()
    let release!: () => void
    const gate = new Promise<void>(resolve => { release = resolve })
    const got: number[] = []
    const ref = h.spawn<number>('gated', {
      mailboxSize: 2,
      create: () => ({ async receive (n) { if (n === 0) await gate; got.push(n) } })
    })
    await ref.tell(0) // taken by the actor, which blocks on the gate
    await new Promise(resolve => setImmediate(resolve))
    await ref.tell(1)
    await ref.tell(2) // mailbox now full (2)
    let thirdIn = false
    const third = ref.tell(3).then(() => { thirdIn = true })
    await new Promise(resolve => setImmediate(resolve))
    expect(thirdIn).toBe(false)
    release()
    await third
    await ref.ask(4)
    expect(got).toEqual([0, 1, 2, 3, 4])
  })

  it('fails a send with MailboxFullError when no room is made before its timeout', async () => {
    const h = host()
    const ref = h.spawn('stuck', { mailboxSize: 1, create: () => ({ receive: async () => await new Promise(() => {}) }) })
    await ref.tell('a')
    await new Promise(resolve => setImmediate(resolve))
    await ref.tell('b')
    await expect(ref.tell('c', { timeoutMs: 20 })).rejects.toMatchObject({ name: 'MailboxFullError' })
  })
})

describe('actor host: supervision', () => {
  it('restarts a crashing actor with fresh state after a backoff; the failed ask gets ActorFailedError', async () => {
    vi.useFakeTimers()
    const h = host()
    let created = 0
    const ref = h.spawn<string>('fragile', {
      supervision: { backoff: { initialMs: 100, factor: 2, maxMs: 1000 } },
      create: () => {
        created++
        let count = 0
        return { receive: (m) => { if (m === 'boom') throw new Error('kaboom'); return ++count } }
      }
    })
    expect(await ref.ask('inc')).toBe(1)
    expect(await ref.ask('inc')).toBe(2)
    await expect(ref.ask('boom')).rejects.toMatchObject({ name: 'ActorFailedError', message: expect.stringContaining('kaboom') })
    // messages sent while it waits to restart are kept and handled by the new instance
    const after = ref.ask('inc')
    let settled = false
    void after.then(() => { settled = true })
    await vi.advanceTimersByTimeAsync(50)
    expect(settled).toBe(false)
    await vi.advanceTimersByTimeAsync(60)
    expect(await after).toBe(1)
    expect(created).toBe(2)
  })

  it('backs off exponentially between restarts', async () => {
    vi.useFakeTimers()
    const h = host()
    const starts: number[] = []
    const ref = h.spawn<string>('flaky', {
      supervision: { maxRestarts: 10, backoff: { initialMs: 100, factor: 2, maxMs: 10_000 } },
      create: () => { starts.push(Date.now()); return { receive: () => { throw new Error('always') } } }
    })
    // queued together: each fresh instance crashes at once on the next message
    const asks = [1, 2, 3, 4].map(async () => await ref.ask('x', { timeoutMs: 60_000 }).catch(() => {}))
    await vi.advanceTimersByTimeAsync(2000)
    await Promise.all(asks)
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!)
    expect(gaps).toEqual([100, 200, 400, 800])
  })

  it('stops an actor that crashes past its limit and escalates to the parent', async () => {
    vi.useFakeTimers()
    const h = host()
    const failures: string[] = []
    let parentCreated = 0
    const parent = h.spawn<string>('parent', {
      create: (ctx) => {
        parentCreated++
        if (!h.has('child')) {
          ctx.spawn<string>('child', {
            supervision: { maxRestarts: 2, withinMs: 60_000, backoff: { initialMs: 10, factor: 1, maxMs: 10 } },
            create: () => ({ receive: () => { throw new Error('child broke') } })
          })
        }
        return {
          receive: () => 'parent ok',
          childFailed: (child, err) => { failures.push(`${child}: ${err.message}`) }
        } satisfies Behavior<string>
      }
    })
    const child = h.ref({ peer: SELF, name: 'child' })
    for (let i = 0; i < 3; i++) {
      await child.ask('x').catch(() => {})
      await vi.advanceTimersByTimeAsync(20)
    }
    expect(h.has('child')).toBe(false)
    expect(failures).toEqual(['child: child broke'])
    expect(await parent.ask('ping')).toBe('parent ok')
    expect(parentCreated).toBe(1)
  })

  it('without a childFailed handler, the parent itself is restarted (escalation)', async () => {
    vi.useFakeTimers()
    const h = host()
    let parentCreated = 0
    h.spawn('parent2', {
      supervision: { backoff: { initialMs: 10, factor: 1, maxMs: 10 } },
      create: (ctx) => {
        parentCreated++
        if (!h.has('child2')) {
          ctx.spawn('child2', {
            supervision: { maxRestarts: 0 },
            create: () => ({ receive: () => { throw new Error('nope') } })
          })
        }
        return { receive: () => 'ok' }
      }
    })
    await h.ask({ peer: SELF, name: 'child2' }, 'x').catch(() => {})
    await vi.advanceTimersByTimeAsync(50)
    expect(parentCreated).toBe(2)
    // the restarted parent spawned a fresh child
    expect(h.has('child2')).toBe(true)
  })

  it('answers with a typed actor error without restarting (the actor keeps its state)', async () => {
    const h = host()
    let created = 0
    const ref = h.spawn<string>('ledger', {
      create: () => {
        created++
        let entries = 0
        return {
          receive: (m) => {
            if (m === 'full') throw new UnavailableError('disk full; try later')
            return ++entries
          }
        }
      }
    })
    expect(await ref.ask('add')).toBe(1)
    await expect(ref.ask('full')).rejects.toMatchObject({ name: 'UnavailableError', message: 'disk full; try later' })
    expect(await ref.ask('add')).toBe(2)
    expect(created).toBe(1)
  })

  it('rejects queued asks when an actor stops', async () => {
    const h = host()
    const ref = h.spawn('busy', { create: () => ({ receive: async () => await new Promise(() => {}) }) })
    void ref.ask('first').catch(() => {})
    await new Promise(resolve => setImmediate(resolve))
    const queued = ref.ask('second')
    await h.stopActor('busy')
    await expect(queued).rejects.toMatchObject({ name: 'ActorStoppingError' })
  })
})

describe('actor host: remote admission', () => {
  const Ping = z.object({ type: z.literal('ping'), n: z.number() })

  it('refuses untrusted peers for trusted actors, admits them for public ones', async () => {
    const h = new ActorHost({ self: SELF, logger: silentLogger(), trust: { isTrusted: p => p === 'friend' } })
    h.spawn('private', { access: 'trusted', schema: Ping, create: () => ({ receive: m => m.n }) })
    h.spawn('public', { access: 'public', schema: Ping, create: () => ({ receive: m => m.n }) })
    h.spawn('local', { create: () => ({ receive: () => 1 }) })
    const req = { kind: 'ask' as const, to: 'private', body: { type: 'ping', n: 1 } }
    await expect(h.receiveRemote('stranger', req)).rejects.toMatchObject({ name: 'NotAuthorizedError', message: expect.stringContaining('--trust stranger') })
    const ok = await h.receiveRemote('friend', req)
    expect(await ok.reply).toBe(1)
    expect(await (await h.receiveRemote('stranger', { ...req, to: 'public' })).reply).toBe(1)
    await expect(h.receiveRemote('friend', { ...req, to: 'local' })).rejects.toMatchObject({ name: 'NotAuthorizedError' })
    await expect(h.receiveRemote('friend', { ...req, to: 'nobody' })).rejects.toMatchObject({ name: 'NoSuchActorError' })
  })

  it('validates remote messages against the actor schema before the actor sees them', async () => {
    const h = host()
    const receive = vi.fn((m: z.infer<typeof Ping>) => m.n)
    h.spawn('public', { access: 'public', schema: Ping, create: () => ({ receive }) })
    await expect(h.receiveRemote('x', { kind: 'ask', to: 'public', body: { type: 'ping', n: 'one' } }))
      .rejects.toMatchObject({ name: 'InvalidMessageError', message: expect.stringContaining('n:') })
    expect(receive).not.toHaveBeenCalled()
  })

  it('refuses to spawn a remotely reachable actor without a schema', () => {
    const h = host()
    expect(() => h.spawn('loose', { access: 'public', create: () => ({ receive: () => 1 }) })).toThrow(/needs a schema/)
  })

  it('skips an ask whose asker gave up before the actor reached it', async () => {
    vi.useFakeTimers()
    const h = host()
    let handled = 0
    let release!: () => void
    h.spawn('svc', { access: 'public', schema: z.string(), create: () => ({ async receive (m) { if (m === 'block') await new Promise<void>(resolve => { release = resolve }); handled++ } }) })
    const first = await h.receiveRemote('p', { kind: 'ask', to: 'svc', body: 'block' })
    const second = await h.receiveRemote('p', { kind: 'ask', to: 'svc', body: 'late', ttlMs: 100 })
    const secondOutcome = expect(second.reply).rejects.toMatchObject({ name: 'AskTimeoutError' })
    await vi.advanceTimersByTimeAsync(200)
    release()
    await first.reply
    await secondOutcome
    expect(handled).toBe(1)
  })
})

describe('actor context: lifetime, clock and timers', () => {
  it('aborts the behaviour\'s signal on a restart and on stop; each incarnation gets a fresh one', async () => {
    const h = host()
    const signals: AbortSignal[] = []
    const ref = h.spawn<string>('life', {
      supervision: { backoff: { initialMs: 1, factor: 1, maxMs: 1 } },
      create: (ctx) => {
        signals.push(ctx.signal)
        return { receive: (m) => { if (m === 'crash') throw new Error('boom'); return ctx.signal.aborted } }
      }
    })
    await expect(ref.ask('crash')).rejects.toMatchObject({ name: 'ActorFailedError' })
    expect(signals[0]!.aborted).toBe(true)
    // the next ask waits for the restart, and the new behaviour is alive
    expect(await ref.ask('alive?')).toBe(false)
    expect(signals).toHaveLength(2)
    expect(signals[1]!.aborted).toBe(false)
    await h.stopActor('life')
    expect(signals[1]!.aborted).toBe(true)
  })

  it('delivers timer messages through the mailbox, driven by fake time, and ends them with the incarnation', async () => {
    vi.useFakeTimers()
    const h = host()
    const seen: Array<{ m: string, at: number }> = []
    let incarnation = 0
    const ref = h.spawn<string>('timed', {
      supervision: { backoff: { initialMs: 10, factor: 1, maxMs: 10 } },
      create: (ctx) => {
        const mine = ++incarnation
        if (mine === 1) {
          ctx.timers.every(100, 'tick')
          ctx.timers.after(250, 'once')
        }
        return {
          receive: (m) => {
            if (m === 'crash') throw new Error('boom')
            seen.push({ m: `${m}#${mine}`, at: ctx.now() })
          }
        }
      }
    })
    const start = Date.now()
    await vi.advanceTimersByTimeAsync(350)
    expect(seen.map(s => s.m)).toEqual(['tick#1', 'tick#1', 'once#1', 'tick#1'])
    expect(seen.map(s => s.at - start)).toEqual([100, 200, 250, 300])
    // a restart ends the first incarnation's timers: the second set none
    await ref.tell('crash')
    await vi.advanceTimersByTimeAsync(1000)
    expect(seen.filter(s => s.m.endsWith('#2'))).toEqual([])
    expect(seen).toHaveLength(4)
    await h.stop()
  })

  it('a cancelled timer never fires', async () => {
    vi.useFakeTimers()
    const h = host()
    const seen: string[] = []
    h.spawn<string>('cancel', {
      create: (ctx) => {
        const stop = ctx.timers.every(50, 'tick')
        const never = ctx.timers.after(120, 'never')
        ctx.timers.after(130, 'stop')
        return {
          receive: (m) => {
            seen.push(m)
            if (m === 'tick' && seen.length === 1) never()
            if (m === 'stop') stop()
          }
        }
      }
    })
    await vi.advanceTimersByTimeAsync(500)
    expect(seen).toEqual(['tick', 'tick', 'stop'])
    await h.stop()
  })
})
