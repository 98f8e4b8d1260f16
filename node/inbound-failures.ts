import type { Multiaddr } from '@multiformats/multiaddr'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { Logger } from 'pino'
import type { Psk } from './psk.ts'
import { forward } from './tcp-cork.ts'

type TransportFactory<C> = (components: C) => Transport

/**
 * The transport, telling `onFailure` about every inbound connection whose
 * upgrade fails. libp2p emits no event for these: its TCP listener only
 * writes them to its debug log, so the accepting side of a failed
 * private-network handshake would otherwise say nothing.
 */
export function reportInboundFailures<C> (make: TransportFactory<C>, onFailure: (remoteAddr: Multiaddr, err: Error) => void): TransportFactory<C> {
  return (components) => {
    const inner = make(components)
    return new Proxy(inner, {
      get (target, prop) {
        if (prop === 'createListener') {
          return (options: Parameters<Transport['createListener']>[0]) => target.createListener({ ...options, upgrader: watching(options.upgrader, onFailure) })
        }
        return forward(target, prop)
      }
    })
  }
}

function watching (upgrader: Upgrader, onFailure: (remoteAddr: Multiaddr, err: Error) => void): Upgrader {
  return new Proxy(upgrader, {
    get (target, prop) {
      if (prop === 'upgradeInbound') {
        return async (maConn: MultiaddrConnection, opts: unknown) => {
          try {
            await (target.upgradeInbound as (c: MultiaddrConnection, o: unknown) => Promise<void>).call(target, maConn, opts)
          } catch (err) {
            onFailure(maConn.remoteAddr, err as Error)
            throw err
          }
        }
      }
      return forward(target, prop)
    }
  })
}

/**
 * What the accepting side sees whenever the keys differ (two keys, a key and
 * none, either way round): libp2p wraps every failure of the encryption step
 * in it. This node's own refusals (rate limit, gater), a muxer that does not
 * match or a scanner that connects and hangs up are other errors, and not
 * reported.
 */
const HANDSHAKE_FAILED = 'EncryptionFailedError'

/** How often one remote host's failed handshakes are logged (a peer with the wrong key retries every few seconds). */
export const HANDSHAKE_WARN_EVERY_MS = 5 * 60_000

/** Says at most once per `everyMs` per remote host that its handshakes fail, with how many failed since. */
export class HandshakeWarnings {
  readonly #everyMs: number
  /** host → when it was last warned about, and the failures since */
  readonly #hosts = new Map<string, { warnedAt: number, since: number }>()

  constructor (everyMs: number) {
    this.#everyMs = everyMs
  }

  /** How many failures of `host` to report now (this one included), or 0 to stay quiet. */
  failed (host: string, now: number): number {
    const seen = this.#hosts.get(host)
    if (seen != null && now - seen.warnedAt < this.#everyMs) {
      seen.since++
      return 0
    }
    // hosts not heard of for two periods are forgotten: the map stays as small as the trouble
    for (const [h, s] of this.#hosts) if (now - s.warnedAt >= 2 * this.#everyMs) this.#hosts.delete(h)
    this.#hosts.set(host, { warnedAt: now, since: 0 })
    return (seen?.since ?? 0) + 1
  }
}

/**
 * The accepting side's warning for a peer that failed the handshake: its
 * address, this node's key fingerprint (or that it has none) and the fix.
 */
export function handshakeReporter (opts: { log: Logger, psk: Psk | undefined, everyMs?: number, now?: () => number }): (remoteAddr: Multiaddr, err: Error) => void {
  const everyMs = opts.everyMs ?? HANDSHAKE_WARN_EVERY_MS
  const warnings = new HandshakeWarnings(everyMs)
  const now = opts.now ?? Date.now
  return (remoteAddr, err) => {
    if (err.name !== HANDSHAKE_FAILED) return
    const host = remoteAddr.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6' || c.name.startsWith('dns'))?.value ?? remoteAddr.toString()
    const failures = warnings.failed(host, now())
    if (failures === 0) return
    const what = opts.psk != null
      ? `failed the private-network handshake with this node (key fingerprint ${opts.psk.fingerprint}): it probably has a different pre-shared key, or none; start it with this node's key file (--psk FILE; every node logs its key's fingerprint when it starts)`
      : 'failed the handshake with this node, which has no pre-shared key: it probably runs a private mesh; start this node with the same --psk FILE, or that one without'
    const repeats = failures > 1 ? ` (${failures} failures since the last warning)` : ''
    opts.log.warn({
      remoteAddr: remoteAddr.toString(),
      failures,
      pskFingerprint: opts.psk?.fingerprint ?? null,
      err: `${err.name}: ${err.message}`
    }, `a peer at ${remoteAddr.toString()} ${what}${repeats}; said at most every ${Math.round(everyMs / 60_000)} min per host`)
  }
}
