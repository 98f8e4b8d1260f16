/**
 * Which peers may fetch which blobs from this node. A coordinator grants a
 * worker the blobs of a campaign when it leases a shard to it, under the
 * campaign's id as scope, and revokes the scope when the campaign ends (or a
 * peer's grants when it leaves). A blob granted under two scopes stays
 * allowed until both are revoked. Trusted peers may fetch any blob.
 */
export class BlobAccess {
  readonly #isTrusted: (peer: string) => boolean
  /** peer → hash → scopes granting it */
  readonly #grants = new Map<string, Map<string, Set<string>>>()

  constructor (isTrusted: (peer: string) => boolean = () => false) {
    this.#isTrusted = isTrusted
  }

  grant (scope: string, peer: string, hashes: Iterable<string>): void {
    let byHash = this.#grants.get(peer)
    if (byHash == null) {
      byHash = new Map()
      this.#grants.set(peer, byHash)
    }
    for (const hash of hashes) {
      let scopes = byHash.get(hash)
      if (scopes == null) {
        scopes = new Set()
        byHash.set(hash, scopes)
      }
      scopes.add(scope)
    }
  }

  /** Withdraws what `scope` granted: to `peer` only, or to every peer. */
  revoke (scope: string, peer?: string): void {
    const peers = peer != null ? [peer] : [...this.#grants.keys()]
    for (const p of peers) {
      const byHash = this.#grants.get(p)
      if (byHash == null) continue
      for (const [hash, scopes] of byHash) {
        scopes.delete(scope)
        if (scopes.size === 0) byHash.delete(hash)
      }
      if (byHash.size === 0) this.#grants.delete(p)
    }
  }

  allows (peer: string, hash: string): boolean {
    return this.#isTrusted(peer) || this.#grants.get(peer)?.has(hash) === true
  }
}
