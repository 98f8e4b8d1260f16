import type { Hono } from 'hono'
import { z } from 'zod'
import type { PeerView } from '../../actors/membership/membership.ts'
import { summarizeIssues } from '../../protocols/common/validate.ts'
import type { BlobGc } from '../blobs/gc.ts'
import { summarizeAccelerators } from '../probe/summary.ts'

/** A bootstrap address a joining node has not reached yet. */
export interface BootstrapAttempt {
  address: string
  attempts: number
  /** why the last attempt failed; null before the first one ends */
  lastError: string | null
}

/** What the node routes need from the node. */
export interface NodeApiSource {
  state: string
  /** the bootstrap addresses still being tried: empty once one answered, when there were none, or while any peer is connected */
  joining: () => BootstrapAttempt[]
  info: () => Record<string, unknown>
  peers: () => Promise<PeerView[]>
  /** the blob store's collector (POST /v1/node/gc) */
  gc: Pick<BlobGc, 'run'>
}

/** `POST /v1/node/gc`: an empty body, or whether to only say what would go. */
export const GcBodySchema = z.object({ dryRun: z.boolean().optional() }).strict()

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
  /** the labels it advertises (zp-node --label, bridges); {} when none */
  labels: Record<string, string>
  slots: PeerView['slots']
  /** its hardware load at its last sample (CPU and GPU busy 0..1, memory in bytes); null when unknown (an older node, sampling off, none yet) */
  load: PeerView['load']
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
    labels: p.capabilities?.labels ?? {},
    slots: p.slots,
    load: p.load,
    lastSeenMs: p.lastSeenMs,
    stateSince: p.stateSince,
    incarnation: p.incarnation
  }
}

/** The JSON of `GET /v1/health`: `ok` only for a running node that is in the mesh. */
export interface HealthJson {
  status: string
  state: string
  reason?: string
  bootstrap?: BootstrapAttempt[]
}

export function healthJson (state: string, joining: BootstrapAttempt[]): HealthJson {
  if (state !== 'running') return { status: state, state }
  if (joining.length === 0) return { status: 'ok', state }
  const tried = joining.reduce((n, b) => n + b.attempts, 0)
  return {
    status: 'joining',
    state,
    reason: `not in the mesh yet: no bootstrap peer has answered and no other peer is connected (${tried} attempt${tried === 1 ? '' : 's'} so far; still retrying); ` +
      'check that the bootstrap node runs and that this machine can reach its address and port',
    bootstrap: joining
  }
}

export function nodeRoutes (node: NodeApiSource) {
  return (app: Hono): void => {
    app.get('/v1/health', c => c.json(healthJson(node.state, node.joining())))
    app.get('/v1/node', c => c.json(node.info()))
    app.get('/v1/peers', async c => c.json((await node.peers()).map(peerJson)))
    app.post('/v1/node/gc', async c => {
      const text = await c.req.text()
      const body = GcBodySchema.safeParse(text.trim() === '' ? {} : JSON.parse(text))
      if (!body.success) return c.json({ error: 'invalid_request', message: summarizeIssues(body.error) }, 400)
      const stopping = (): Response => c.json({ error: 'unavailable', message: `the node is ${node.state}: its blob store is collected while it runs` }, 503)
      if (node.state === 'stopping' || node.state === 'stopped') return stopping()
      try {
        return c.json(await node.gc.run({ dryRun: body.data.dryRun }))
      } catch (err) {
        if (node.state === 'stopping' || node.state === 'stopped') return stopping()
        throw err
      }
    })
  }
}
