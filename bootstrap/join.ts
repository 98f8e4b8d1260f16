import type { Logger } from 'pino'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Connection } from '@libp2p/interface'
import { backoffDelay, type Backoff } from '../protocols/common/backoff.ts'
import { delay } from '../protocols/common/signals.ts'

export const JOIN_BACKOFF: Backoff = { initialMs: 500, factor: 2, maxMs: 30_000, jitter: 0.2 }
const DIAL_TIMEOUT_MS = 10_000

export interface Dialer {
  dial: (addr: Multiaddr, opts: { signal: AbortSignal }) => Promise<Connection>
}

export interface JoinOptions {
  signal: AbortSignal
  log: Logger
  /** explains a failure better than the raw error, e.g. a pre-shared key mismatch */
  explain?: (err: Error) => string
  backoff?: Backoff
}

/** libp2p's answer when an address turns out to be this node (an address without /p2p/ reached ourselves) */
export function isSelfDial (err: unknown): boolean {
  const e = err as Error | undefined
  return (e?.name === 'InvalidPeerIdError' || e?.name === 'DialError') && /dial self/i.test(e.message)
}

/**
 * Dials the bootstrap peer until it answers, backing off between attempts and
 * saying so each time. Resolves with the connection (whose remote peer is the
 * bootstrap's authenticated identity), or with 'self' when the address is
 * this node's own (every pod of a StatefulSet joins through pod 0, pod 0
 * included); rejects only when `signal` aborts. The rest of the mesh is then
 * learned from it (membership's hello exchange).
 */
export async function joinMesh (node: Dialer, addr: Multiaddr, opts: JoinOptions): Promise<Connection | 'self'> {
  const policy = opts.backoff ?? JOIN_BACKOFF
  for (let attempt = 1; ; attempt++) {
    try {
      const signal = AbortSignal.any([opts.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)])
      const conn = await node.dial(addr, { signal })
      opts.log.info({ bootstrap: addr.toString(), bootstrapPeer: conn.remotePeer.toString(), attempt }, 'joined the mesh through the bootstrap peer')
      return conn
    } catch (err) {
      if (opts.signal.aborted) throw opts.signal.reason
      if (isSelfDial(err)) {
        opts.log.info({ bootstrap: addr.toString() }, 'the bootstrap address is this node itself: nothing to join through it')
        return 'self'
      }
      const wait = backoffDelay(policy, attempt)
      const why = opts.explain?.(err as Error) ?? (err as Error).message
      opts.log.warn({ bootstrap: addr.toString(), attempt, retryInMs: wait, err: why }, `bootstrap peer unreachable (${why}); retrying in ${(wait / 1000).toFixed(1)} s`)
      await delay(wait, opts.signal)
    }
  }
}
