import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerDiscovery } from '@libp2p/interface'
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

/** What the membership actor does through libp2p: publish heartbeats (`published` counts them), check and make connections. */
export function meshPort (libp2p: MeshLibp2p, published?: () => void): MeshPort {
  return {
    publish: async (hb) => {
      await libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, encode(hb))
      published?.()
    },
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
 * connections, disconnections, heartbeats and peers found on the LAN to membership. Called before
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
  const discovery = libp2p.services.mdns
  if (discovery != null) wireLanDiscovery({ discovery, tellMembership, log })
}

/**
 * The mDNS service name nodes ask and answer under: meshes with different
 * pre-shared keys on one LAN never hear of each other (they could not
 * connect anyway), and a node without a key only finds others without one.
 */
export function mdnsServiceTag (pskFingerprint?: string): string {
  return pskFingerprint != null ? `_zp-${pskFingerprint.slice(0, 12)}._udp.local` : '_zp-mesh._udp.local'
}

/**
 * Hands the peers mDNS finds to membership, which dials those it does not
 * know yet (libp2p v3 discovery never dials). mDNS repeats every peer at
 * each query; each is logged once.
 */
export function wireLanDiscovery ({ discovery, tellMembership, log }: { discovery: PeerDiscovery, tellMembership: (msg: MembershipMessage) => void, log: Logger }): void {
  const seen = new Set<string>()
  discovery.addEventListener('peer', (evt) => {
    const peerId = evt.detail.id.toString()
    const multiaddrs = evt.detail.multiaddrs.map(String)
    if (!seen.has(peerId)) {
      seen.add(peerId)
      log.info({ peerId, multiaddrs, via: 'mdns' }, 'found a peer on the LAN (mDNS)')
    }
    tellMembership({ type: 'seed', peers: [{ peerId, multiaddrs }] })
  })
}
