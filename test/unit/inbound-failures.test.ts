import { describe, expect, it } from 'vitest'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { multiaddr } from '@multiformats/multiaddr'
import { HandshakeWarnings, handshakeReporter } from '../../node/inbound-failures.ts'

const MIN = 60_000

function capture (): { log: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)
      done()
    }
  })
  return { log: pino({ level: 'info' }, stream), lines }
}

function failure (name: string, message = 'Message length length too long - 3 > 2'): Error {
  const err = new Error(message)
  err.name = name
  return err
}

/** pino writes through a stream: let it deliver */
async function flushed (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
}

describe('failed inbound handshakes', () => {
  it('are warned about once per host per period, with the count of failures since', () => {
    const w = new HandshakeWarnings(5 * MIN)
    expect(w.failed('10.0.0.7', 0)).toBe(1)
    expect(w.failed('10.0.0.7', 1000)).toBe(0)
    expect(w.failed('10.0.0.7', 2000)).toBe(0)
    // another host is its own
    expect(w.failed('10.0.0.8', 3000)).toBe(1)
    expect(w.failed('10.0.0.7', 5 * MIN - 1)).toBe(0)
    expect(w.failed('10.0.0.7', 5 * MIN)).toBe(4)
    expect(w.failed('10.0.0.7', 5 * MIN + 1)).toBe(0)
  })

  it('a node with a key names the remote address, its own fingerprint and the fix; a retrying peer is one line, not a flood', async () => {
    const { log, lines } = capture()
    let now = 0
    const report = handshakeReporter({ log, psk: { bytes: new Uint8Array(), fingerprint: '0123456789abcdef' }, now: () => now })
    for (let port = 50000; port < 50010; port++) {
      report(multiaddr(`/ip4/192.168.1.20/tcp/${port}`), failure('EncryptionFailedError'))
      now += 2000
    }
    await flushed()
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 40, remoteAddr: '/ip4/192.168.1.20/tcp/50000', pskFingerprint: '0123456789abcdef', failures: 1 })
    expect(String(lines[0]!.msg)).toMatch(/^a peer at \/ip4\/192\.168\.1\.20\/tcp\/50000 failed the private-network handshake with this node \(key fingerprint 0123456789abcdef\): .*different pre-shared key.*--psk FILE/)
    now = 5 * MIN
    report(multiaddr('/ip4/192.168.1.20/tcp/50011'), failure('EncryptionFailedError'))
    await flushed()
    expect(lines).toHaveLength(2)
    expect(lines[1]).toMatchObject({ failures: 10 })
    expect(String(lines[1]!.msg)).toMatch(/\(10 failures since the last warning\)/)
  })

  it('a node without a key says the peer probably runs a private mesh; its own refusals and a hang-up are not handshake failures', async () => {
    const { log, lines } = capture()
    const report = handshakeReporter({ log, psk: undefined })
    report(multiaddr('/ip4/10.1.1.1/tcp/4170'), failure('ConnectionDeniedError', 'Connection denied'))
    report(multiaddr('/ip4/10.1.1.1/tcp/4171'), failure('ConnectionInterceptedError', 'blocked by gater'))
    report(multiaddr('/ip4/10.1.1.1/tcp/4172'), failure('UnexpectedEOFError', 'unexpected end of input'))
    report(multiaddr('/ip6/::1/tcp/4172'), failure('EncryptionFailedError', 'Missing newline'))
    await flushed()
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ remoteAddr: '/ip6/::1/tcp/4172', pskFingerprint: null })
    expect(String(lines[0]!.msg)).toMatch(/which has no pre-shared key: it probably runs a private mesh; start this node with the same --psk FILE/)
  })
})
