import { join } from 'node:path'
import type { Connection } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { pino, type Logger } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Transition } from '../../actors/membership/peer-table.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { BootstrapJoin, explainDialError } from '../../node/bootstrap-join.ts'
import { CapabilityProbe, capabilityHash } from '../../node/capabilities.ts'
import { KNOWN_PEER_TTL_MS, KnownPeers } from '../../node/known-peers.ts'
import { silentLogger } from '../../node/logger.ts'
import type { Psk } from '../../node/psk.ts'
import { openDb } from '../../node/storage.ts'
import { tempDir, waitFor } from '../helpers.ts'

function captured (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  return { log: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }), lines }
}

const named = (name: string, message = 'boom'): Error => Object.assign(new Error(message), { name })
const PSK: Psk = { bytes: new Uint8Array(), fingerprint: '0123456789abcdef' }

describe('known peers', () => {
  const transition = (over: Partial<Transition>): Transition => ({ peerId: 'p1', name: 'one', from: 'unknown', to: 'alive', reason: 'hello', multiaddrs: ['/ip4/127.0.0.1/tcp/1'], left: false, ...over })

  it('remembers peers seen alive with addresses, forgets those that left and those not seen within the TTL', async () => {
    const dir = await tempDir('zp-known-peers-')
    const db = await openDb(join(dir.path, 'db'), dir.path)
    try {
      let now = 1_000_000
      const known = new KnownPeers(db, () => now)
      await known.record(transition({ peerId: 'p1' }))
      await known.record(transition({ peerId: 'p2', multiaddrs: ['/ip4/127.0.0.1/tcp/2'] }))
      // alive but no address to dial: nothing to remember
      await known.record(transition({ peerId: 'p3', multiaddrs: [] }))
      // dead without a goodbye (a crash): still worth redialling after a restart
      await known.record(transition({ peerId: 'p2', to: 'dead', multiaddrs: [] }))
      expect(await known.load()).toEqual([
        { peerId: 'p1', multiaddrs: ['/ip4/127.0.0.1/tcp/1'] },
        { peerId: 'p2', multiaddrs: ['/ip4/127.0.0.1/tcp/2'] }
      ])
      await known.record(transition({ peerId: 'p1', to: 'dead', left: true, multiaddrs: [] }))
      now += 1000
      await known.record(transition({ peerId: 'p4' }))
      now += KNOWN_PEER_TTL_MS
      expect(await known.load()).toEqual([{ peerId: 'p4', multiaddrs: ['/ip4/127.0.0.1/tcp/1'] }])
      // the stale entry is gone from the database, not only skipped
      expect(await db.get('peers!p2')).toBeUndefined()
    } finally {
      await db.close()
      await dir.remove()
    }
  })
})

describe('capability probing', () => {
  const report = (over: Partial<CapabilityReport> = {}): CapabilityReport => ({
    probedAt: 1,
    durationMs: 12.6,
    host: { hostname: 'h', platform: 'linux', arch: 'x64', cpuModel: 'cpu', cpuVendor: 'v', cores: 4, physicalCores: 2, memoryBytes: 1 },
    capabilities: { 'cpu.x86.avx2': { status: 'ok' }, 'gpu.nvidia.cuda': { status: 'unavailable', reason: 'no driver' } },
    ...over
  })

  it('hashes what was found, not when nor in which order', () => {
    const a = report()
    const again = report({ probedAt: 99, durationMs: 3, capabilities: { 'gpu.nvidia.cuda': { status: 'unavailable', reason: 'no driver' }, 'cpu.x86.avx2': { status: 'ok' } } })
    expect(capabilityHash(again)).toBe(capabilityHash(a))
    expect(capabilityHash(report({ capabilities: { 'cpu.x86.avx2': { status: 'ok' } } }))).not.toBe(capabilityHash(a))
    expect(capabilityHash(a)).toMatch(/^[0-9a-f]{32}$/)
  })

  it('advertises a given report at once, with the exec capabilities added, and logs the first', () => {
    const { log, lines } = captured()
    const advertised: Array<[CapabilityReport, string]> = []
    const probe = new CapabilityProbe({
      probe: report(),
      extra: { 'exec.blast': { status: 'ok' } },
      advertise: (r, hash) => { advertised.push([r, hash]) },
      signal: new AbortController().signal,
      log
    })
    expect(probe.report).toBeNull()
    probe.start()
    probe.stop()
    expect(advertised).toHaveLength(1)
    const [sent, hash] = advertised[0]!
    expect(Object.keys(sent.capabilities).sort()).toEqual(['cpu.x86.avx2', 'exec.blast', 'gpu.nvidia.cuda'])
    expect(hash).toBe(capabilityHash(sent))
    expect(probe.report).toBe(sent)
    expect(lines).toMatchObject([{ level: 30, capabilities: 2, durationMs: 13, msg: 'capabilities probed' }])
  })

  it('advertises nothing when probing is off', () => {
    const advertise = vi.fn()
    const probe = new CapabilityProbe({ probe: false, extra: {}, advertise, signal: new AbortController().signal, log: silentLogger() })
    probe.start()
    probe.stop()
    expect(advertise).not.toHaveBeenCalled()
    expect(probe.report).toBeNull()
  })
})

describe('joining through a bootstrap', () => {
  afterEach(() => { vi.useRealTimers() })

  it('says a failed handshake is probably another pre-shared key, naming this key\'s fingerprint', () => {
    expect(explainDialError(named('EncryptionFailedError'), PSK)).toMatch(/different pre-shared key, or none \(this node's key fingerprint is 0123456789abcdef\)/)
    expect(explainDialError(named('EncryptionFailedError'), undefined)).toMatch(/private mesh; pass the same --psk FILE/)
    expect(explainDialError(named('TimeoutError'), PSK)).toMatch(/may not use this pre-shared key: fingerprint 0123456789abcdef/)
    expect(explainDialError(named('TimeoutError'), undefined)).toBe('boom')
  })

  it('counts every failed dial for /v1/health until one answers, then trusts (through onJoined) the peer that answered', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const answered = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const expected = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const addr = multiaddr(`/ip4/127.0.0.1/tcp/1/p2p/${expected}`)
    const outcomes: Array<Error | Connection> = [named('EncryptionFailedError'), named('EncryptionFailedError'), { remotePeer: answered } as unknown as Connection]
    const joined: string[] = []
    const { log, lines } = captured()
    const join = new BootstrapJoin({
      dial: async () => {
        const next = outcomes.shift()!
        if (next instanceof Error) throw next
        return next
      },
      psk: PSK,
      signal: new AbortController().signal,
      log,
      onJoined: (peer) => { joined.push(peer) }
    })
    expect(join.pending()).toEqual([])
    join.start([addr])
    await vi.advanceTimersByTimeAsync(0)
    expect(join.pending()).toEqual([{ address: addr.toString(), attempts: 1, lastError: expect.stringMatching(/fingerprint is 0123456789abcdef/) }])
    // a copy: the caller cannot change the count
    join.pending()[0]!.attempts = 99
    await vi.advanceTimersByTimeAsync(1000)
    expect(join.pending()[0]!.attempts).toBe(2)
    expect(joined).toEqual([])
    await vi.advanceTimersByTimeAsync(2000)
    expect(join.pending()).toEqual([])
    expect(joined).toEqual([answered.toString()])
    expect(lines.find(l => l.msg === 'bootstrap address names another peer ID than the one that answered')).toMatchObject({ level: 40, expected, got: answered.toString() })
  })

  it('an address that is this node itself is dropped, not retried, and named as its own', async () => {
    const { log } = captured()
    let dials = 0
    const self = Object.assign(new Error('Can not dial self'), { name: 'DialError' })
    const join = new BootstrapJoin({ dial: async () => { dials++; throw self }, psk: undefined, signal: new AbortController().signal, log, onJoined: vi.fn() })
    const addr = multiaddr('/ip4/10.77.0.1/tcp/4170')
    join.start([addr])
    await waitFor(() => join.own().length > 0, { what: 'the self dial' })
    expect(join.own()).toEqual([addr.toString()])
    expect(join.pending()).toEqual([])
    expect(dials).toBe(1)
  })

  it('stops retrying when the node stops, without calling it a failure', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const lifetime = new AbortController()
    const { log, lines } = captured()
    const onJoined = vi.fn()
    let dials = 0
    const join = new BootstrapJoin({ dial: async () => { dials++; throw named('Error', 'connection refused') }, psk: undefined, signal: lifetime.signal, log, onJoined })
    join.start([multiaddr('/ip4/127.0.0.1/tcp/1')])
    await vi.advanceTimersByTimeAsync(0)
    lifetime.abort(new Error('node stopping'))
    await vi.advanceTimersByTimeAsync(60_000)
    expect(dials).toBe(1)
    expect(onJoined).not.toHaveBeenCalled()
    expect(join.pending()).toMatchObject([{ attempts: 1, lastError: 'connection refused' }])
    expect(lines.filter(l => l.level === 50)).toEqual([])
  })
})
