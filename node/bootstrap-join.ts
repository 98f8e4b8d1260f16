import type { Connection } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { describeError } from '../actors/runtime/errors.ts'
import { peerIdIn } from '../bootstrap/address.ts'
import { joinMesh, type Dialer } from '../bootstrap/join.ts'
import type { BootstrapAttempt } from './api/routes.ts'
import type { Psk } from './psk.ts'

/** The raw libp2p errors of a failed handshake do not say "wrong key"; this does. */
export function explainDialError (err: Error, psk: Psk | undefined): string {
  const msg = describeError(err)
  if (err.name === 'EncryptionFailedError') {
    return psk != null
      ? `handshake failed (${msg}): the peer probably uses a different pre-shared key, or none (this node's key fingerprint is ${psk.fingerprint})`
      : `handshake failed (${msg}): the peer probably runs a private mesh; pass the same --psk FILE`
  }
  if (psk != null && err.name === 'TimeoutError') {
    return `${msg} (if the host is reachable, it may not use this pre-shared key: fingerprint ${psk.fingerprint})`
  }
  return msg
}

export interface BootstrapJoinInit extends Dialer {
  psk: Psk | undefined
  /** aborted when the node stops: the retries end */
  signal: AbortSignal
  log: Logger
  /** a bootstrap answered; `peer` is its authenticated peer ID */
  onJoined: (peer: string) => void
}

/**
 * Joins the mesh through the bootstrap addresses (each retried with backoff
 * until one answers), counting every failed dial for `/v1/health` meanwhile.
 */
export class BootstrapJoin {
  readonly #init: BootstrapJoinInit
  /** addresses not reached yet; cleared once one answers */
  readonly #pending = new Map<string, BootstrapAttempt>()
  /** addresses that turned out to be this node itself */
  readonly #self = new Set<string>()

  constructor (init: BootstrapJoinInit) {
    this.#init = init
  }

  /** Starts dialling every address in the background. */
  start (addrs: Multiaddr[]): void {
    for (const addr of addrs) this.#pending.set(addr.toString(), { address: addr.toString(), attempts: 0, lastError: null })
    for (const addr of addrs) void this.#join(addr)
  }

  /** the bootstrap addresses that are this node's own (every host of an overlay gets the same list) */
  own (): string[] {
    return [...this.#self]
  }

  /** copies of the attempts so far at the addresses not reached yet */
  pending (): BootstrapAttempt[] {
    return [...this.#pending.values()].map(b => ({ ...b }))
  }

  async #join (addr: Multiaddr): Promise<void> {
    const { psk, signal, log } = this.#init
    const dialer: Dialer = {
      dial: async (a, opts) => {
        try {
          return await this.#init.dial(a, opts)
        } catch (err) {
          const entry = this.#pending.get(addr.toString())
          if (entry != null) {
            entry.attempts++
            entry.lastError = explainDialError(err as Error, psk)
          }
          throw err
        }
      }
    }
    let conn: Connection | 'self'
    try {
      conn = await joinMesh(dialer, addr, { signal, log, explain: (err) => explainDialError(err, psk) })
    } catch (err) {
      if (!signal.aborted) log.error({ err: describeError(err) }, 'joining the mesh failed')
      return
    }
    if (conn === 'self') {
      // this node is (one of) the bootstrap(s): the others reach it; it waits for no one
      this.#pending.delete(addr.toString())
      this.#self.add(addr.toString())
      return
    }
    this.#pending.clear()
    const bootstrapPeer = conn.remotePeer.toString()
    const named = peerIdIn(addr)
    if (named != null && named !== bootstrapPeer) {
      log.warn({ expected: named, got: bootstrapPeer }, 'bootstrap address names another peer ID than the one that answered')
    }
    this.#init.onJoined(bootstrapPeer)
  }
}
