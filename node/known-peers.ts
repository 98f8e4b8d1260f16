import type { Transition } from '../actors/membership/peer-table.ts'
import type { Db } from './storage.ts'

const PREFIX = 'peers!'
/** a peer not seen alive for this long is not redialled after a restart */
export const KNOWN_PEER_TTL_MS = 7 * 24 * 3600 * 1000

export interface KnownPeer {
  peerId: string
  multiaddrs: string[]
}

/**
 * The peers this node has seen alive, kept in its database so that a
 * restarted node finds the mesh again without its bootstrap.
 */
export class KnownPeers {
  readonly #db: Db
  readonly #now: () => number

  constructor (db: Db, now: () => number = Date.now) {
    this.#db = db
    this.#now = now
  }

  /** Remembers a peer seen alive with addresses; forgets one that left. Never rejects: the next transition writes again. */
  async record (t: Transition): Promise<void> {
    const key = PREFIX + t.peerId
    if (t.to === 'alive' && t.multiaddrs.length > 0) {
      await this.#db.put(key, { multiaddrs: t.multiaddrs, name: t.name, seenAt: this.#now() }).catch(() => {})
    } else if (t.left) {
      await this.#db.del(key).catch(() => {})
    }
  }

  /** The peers seen alive within the TTL; older ones are deleted. */
  async load (): Promise<KnownPeer[]> {
    const out: KnownPeer[] = []
    for await (const [key, value] of this.#db.iterator({ gte: PREFIX, lt: PREFIX + '\xff' })) {
      const rec = value as { multiaddrs?: string[], seenAt?: number }
      if (this.#now() - (rec.seenAt ?? 0) > KNOWN_PEER_TTL_MS) {
        await this.#db.del(key)
      } else if (Array.isArray(rec.multiaddrs)) {
        out.push({ peerId: key.slice(PREFIX.length), multiaddrs: rec.multiaddrs })
      }
    }
    return out
  }
}
