import type { Hono } from 'hono'
import type { PeerView } from '../../actors/membership/membership.ts'
import { summarizeAccelerators } from '../probe/summary.ts'

/** What the node routes need from the node. */
export interface NodeApiSource {
  state: string
  info: () => Record<string, unknown>
  peers: () => Promise<PeerView[]>
}

/** The JSON shape of one peer in `GET /v1/peers` and `zp peers --json`. */
export interface PeerJson {
  peerId: string
  name: string
  state: PeerView['state']
  reason: string
  self: boolean
  connected: boolean
  multiaddrs: string[]
  capabilities: PeerView['capabilities']
  accelerators: string[]
  slots: PeerView['slots']
  /** epoch ms of the last heartbeat or hello heard from the peer */
  lastSeenMs: number
  /** epoch ms of its last state change */
  stateSince: number
  incarnation: number
}

export function peerJson (p: PeerView): PeerJson {
  return {
    peerId: p.peerId,
    name: p.name,
    state: p.state,
    reason: p.reason,
    self: p.self,
    connected: p.connected,
    multiaddrs: p.multiaddrs,
    capabilities: p.capabilities,
    accelerators: p.capabilities != null ? summarizeAccelerators(p.capabilities) : [],
    slots: p.slots,
    lastSeenMs: p.lastSeenMs,
    stateSince: p.stateSince,
    incarnation: p.incarnation
  }
}

export function nodeRoutes (node: NodeApiSource) {
  return (app: Hono): void => {
    app.get('/v1/health', c => c.json({ status: node.state === 'running' ? 'ok' : node.state, state: node.state }))
    app.get('/v1/node', c => c.json(node.info()))
    app.get('/v1/peers', async c => c.json((await node.peers()).map(peerJson)))
  }
}
