import type { TrustPolicy } from '../actors/runtime/types.ts'

/**
 * Which peers may use this node's privileged actors (worker, coordinator):
 * the node itself, the `--trust` peers, and by default the peer it joined
 * through. Everyone else gets "not authorized".
 */
export class Trust implements TrustPolicy {
  readonly #peers = new Map<string, string>()

  constructor (self: string, trusted: Iterable<string> = []) {
    this.#peers.set(self, 'this node')
    for (const p of trusted) this.#peers.set(p, '--trust')
  }

  add (peer: string, why: string): void {
    if (!this.#peers.has(peer)) this.#peers.set(peer, why)
  }

  isTrusted (peer: string): boolean {
    return this.#peers.has(peer)
  }

  list (): Array<{ peerId: string, why: string }> {
    return [...this.#peers].map(([peerId, why]) => ({ peerId, why }))
  }
}
