/**
 * How long a peer may fetch a blob made for it (a checkpoint snapshot, a
 * large result): well past the 10 minutes a worker retries a result's delivery.
 */
export const OFFER_TTL_MS = 3600_000

/**
 * Which peers may fetch which blobs from this node. A coordinator grants a
 * worker the blobs of a campaign when it leases a shard to it, under the
 * campaign's id as scope, and revokes the scope when the campaign ends (or a
 * peer's grants when it leaves). A blob made for one peer to fetch (a
 * checkpoint snapshot, a large result) is granted for a time instead, as
 * nothing tells this node when the fetch is over. A blob granted under two
 * scopes stays allowed until both are revoked or expire. Trusted peers may
 * fetch any blob. What is granted is in use: the garbage collector keeps it.
 */
export class BlobAccess {
  readonly #isTrusted: (peer: string) => boolean
  readonly #now: () => number
  /** peer → hash → scope granting it → when the grant ends (Infinity: when revoked) */
  readonly #grants = new Map<string, Map<string, Map<string, number>>>()

  constructor (isTrusted: (peer: string) => boolean = () => false, now: () => number = Date.now) {
    this.#isTrusted = isTrusted
    this.#now = now
  }

  /** With `ttlMs`, the grant ends by itself that long from now. */
  grant (scope: string, peer: string, hashes: Iterable<string>, ttlMs?: number): void {
    const until = ttlMs != null ? this.#now() + ttlMs : Infinity
    let byHash = this.#grants.get(peer)
    if (byHash == null) {
      byHash = new Map()
      this.#grants.set(peer, byHash)
    }
    for (const hash of hashes) {
      let scopes = byHash.get(hash)
      if (scopes == null) {
        scopes = new Map()
        byHash.set(hash, scopes)
      }
      scopes.set(scope, Math.max(until, scopes.get(scope) ?? -Infinity))
    }
  }

  /** Withdraws what `scope` granted: to `peer` only, or to every peer. */
  revoke (scope: string, peer?: string): void {
    this.#prune(peer != null ? [peer] : [...this.#grants.keys()], (scopes) => { scopes.delete(scope) })
  }

  allows (peer: string, hash: string): boolean {
    if (this.#isTrusted(peer)) return true
    const now = this.#now()
    for (const until of this.#grants.get(peer)?.get(hash)?.values() ?? []) if (until > now) return true
    return false
  }

  /** Every blob some peer may fetch now (trust aside) under a scope not `except`ed, forgetting grants that have expired. */
  granted (except: (scope: string) => boolean = () => false): Set<string> {
    const now = this.#now()
    this.#prune([...this.#grants.keys()], (scopes) => {
      for (const [scope, until] of scopes) if (until <= now) scopes.delete(scope)
    })
    const out = new Set<string>()
    for (const byHash of this.#grants.values()) {
      for (const [hash, scopes] of byHash) {
        if ([...scopes.keys()].some(scope => !except(scope))) out.add(hash)
      }
    }
    return out
  }

  /** Applies `change` to the scopes of each of `peers`' grants, dropping what is left empty. */
  #prune (peers: string[], change: (scopes: Map<string, number>) => void): void {
    for (const p of peers) {
      const byHash = this.#grants.get(p)
      if (byHash == null) continue
      for (const [hash, scopes] of byHash) {
        change(scopes)
        if (scopes.size === 0) byHash.delete(hash)
      }
      if (byHash.size === 0) this.#grants.delete(p)
    }
  }
}
