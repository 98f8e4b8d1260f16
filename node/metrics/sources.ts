import type { CoordinatorGauges, CoordinatorMessage } from '../../actors/coordinator/coordinator.ts'
import { COORDINATOR_ACTOR } from '../../actors/coordinator/coordinator.ts'
import type { ActorHost } from '../../actors/runtime/host.ts'
import type { Load } from '../../protocols/membership/schema.ts'
import type { ScrapeSources } from './metrics.ts'

/** The node's state the gauges read on each scrape: membership, the blob store, the mailboxes, the coordinator. */
export function nodeSources (node: {
  peerId: string
  host: ActorHost
  peers: () => Promise<Array<{ state: string }>>
  blobs: { store: { usage: () => { blobs: number, bytes: number } } }
  load: () => Load | null
}): ScrapeSources {
  return {
    peers: async () => await node.peers(),
    blobStore: () => node.blobs.store.usage(),
    mailboxes: () => node.host.mailboxes(),
    load: () => node.load(),
    campaigns: async () => node.host.has(COORDINATOR_ACTOR)
      ? await node.host.ask<CoordinatorGauges[]>({ peer: node.peerId, name: COORDINATOR_ACTOR }, { type: 'metrics' } satisfies CoordinatorMessage, { timeoutMs: 5000 })
      : []
  }
}
