import type { TrustPolicy } from '../actors/runtime/types.ts'

/**
 * Which peers may use this node's privileged actors (worker, coordinator):
 * the node itself, the `--trust` peers, and by default the peer it joined
 * through. Everyone else gets "not authorized" — unless the node trusts the
 * whole mesh (`--trust-mesh`), meant for private meshes where holding the
 * pre-shared key is the admission.
 */
export class Trust implements TrustPolicy {
  readonly #peers = new Map<string, string>()
  readonly mesh: boolean

  constructor (self: string, trusted: Iterable<string> = [], opts: { mesh?: boolean } = {}) {
    this.#peers.set(self, 'this node')
    for (const p of trusted) this.#peers.set(p, '--trust')
    this.mesh = opts.mesh === true
  }

  add (peer: string, why: string): void {
    if (!this.#peers.has(peer)) this.#peers.set(peer, why)
  }

  isTrusted (peer: string): boolean {
    return this.mesh || this.#peers.has(peer)
  }

  list (): Array<{ peerId: string, why: string }> {
    return [...this.#peers].map(([peerId, why]) => ({ peerId, why }))
  }
}
