import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { MembershipMessage, MeshPort } from '../actors/membership/membership.ts'
import { describeError } from '../actors/runtime/errors.ts'
import type { ActorHost } from '../actors/runtime/host.ts'
import { ACTOR_PROTOCOL, MAX_STREAMS } from '../protocols/actor/constants.ts'
import type { ActorTransport } from '../protocols/actor/transport.ts'
import { decodeAs, encode } from '../protocols/common/codec.ts'
import { HEARTBEAT_TOPIC, MAX_HEARTBEAT_BYTES } from '../protocols/membership/constants.ts'
import { HeartbeatSchema } from '../protocols/membership/schema.ts'
import type { MeshLibp2p } from './libp2p.ts'

/** What the membership actor does through libp2p: publish heartbeats, check and make connections. */
export function meshPort (libp2p: MeshLibp2p): MeshPort {
  return {
    publish: async (hb) => { await libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, encode(hb)) },
    isConnected: (peer) => libp2p.getConnections(peerIdFromString(peer)).length > 0,
    connect: async (peer, addrs, signal) => {
      const id = peerIdFromString(peer)
      if (libp2p.getConnections(id).length > 0) return
      const known = addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
      if (known.length > 0) await libp2p.peerStore.merge(id, { multiaddrs: known })
      await libp2p.dial(id, { signal })
    }
  }
}

export interface MeshEvents {
  libp2p: MeshLibp2p
  transport: ActorTransport
  /** receives the messages of inbound actor streams */
  host: ActorHost
  tellMembership: (msg: MembershipMessage) => void
  log: Logger
}

/**
 * Routes libp2p's traffic to the actors: actor streams to the host;
 * connections, disconnections and heartbeats to membership. Called before
 * libp2p starts, so nothing that arrives is missed.
 */
export async function wireMeshEvents ({ libp2p, transport, host, tellMembership, log }: MeshEvents): Promise<void> {
  await libp2p.handle(ACTOR_PROTOCOL, (stream, connection) => {
    transport.accept(stream, connection.remotePeer.toString(), host)
  }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })
  libp2p.addEventListener('connection:open', (evt) => {
    tellMembership({ type: 'connected', peer: evt.detail.remotePeer.toString(), outbound: evt.detail.direction === 'outbound' })
  })
  libp2p.addEventListener('peer:disconnect', (evt) => {
    const peer = evt.detail.toString()
    transport.forget(peer)
    tellMembership({ type: 'disconnected', peer })
  })
  libp2p.services.pubsub.addEventListener('message', (evt) => {
    const msg = evt.detail
    if (msg.topic !== HEARTBEAT_TOPIC || msg.type !== 'signed') return
    if (msg.data.byteLength > MAX_HEARTBEAT_BYTES) return
    try {
      tellMembership({ type: 'heartbeat', peer: msg.from.toString(), hb: decodeAs(HeartbeatSchema, msg.data, 'heartbeat') })
    } catch (err) {
      log.debug({ from: msg.from.toString(), err: describeError(err) }, 'ignored an invalid heartbeat')
    }
  })
}
