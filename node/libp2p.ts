import { createLibp2p, type Libp2p } from 'libp2p'
import { corkedTcp } from './tcp-cork.ts'
import { reportInboundFailures } from './inbound-failures.ts'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify, type Identify } from '@libp2p/identify'
import { ping, type Ping } from '@libp2p/ping'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { preSharedKey } from '@libp2p/pnet'
import { mdns } from '@libp2p/mdns'
import type { PeerDiscovery, PrivateKey } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Yamux grows a busy stream's window up to 16 MiB by default, while a paused
 * stream is reset once it has buffered 4 MiB: a slow reader would lose data
 * instead of slowing its sender. Capping the window below the read buffer
 * makes pausing a stream real backpressure. 4 MiB still fills a 1 Gbit/s link
 * at 30 ms round trip per stream.
 */
export const STREAM_WINDOW_BYTES = 4 * 1024 * 1024
export const STREAM_READ_BUFFER_BYTES = 2 * STREAM_WINDOW_BYTES

/**
 * libp2p refuses more than 5 inbound connections per second from one host by
 * default. A lab starts many nodes on one host or behind one NAT (a Slurm
 * allocation, a multi-GPU box, the demo), and every sixth would be reset.
 */
export const INBOUND_CONNECTIONS_PER_HOST_PER_SECOND = 100

/**
 * `@libp2p/pnet` 3.0.27 encrypts whatever its send queue holds in one piece,
 * and its xsalsa20 fails on pieces above about 640 KB (fixed upstream, not
 * released). The queue grows past that whenever the socket pushes back, so
 * the protected stream is told to send at most this much at a time.
 */
export const PSK_MAX_CHUNK_BYTES = 256 * 1024

/** `mdns` is there only with the `mdns` option: a service rather than a `peerDiscovery` entry, so the node can tell its finds from other new peers */
export type MeshLibp2p = Libp2p<{ identify: Identify, ping: Ping, pubsub: GossipSub, mdns?: PeerDiscovery }>

export interface Libp2pOptions {
  privateKey: PrivateKey
  listen: string[]
  /** addresses to tell peers instead of the listen addresses (NAT, WireGuard overlay) */
  announce?: string[]
  /** swarm key bytes: with it, only nodes holding the same key can connect */
  psk?: Uint8Array
  /** refuse connections with these peers (the test harness's simulated partition) */
  blocked?: ReadonlySet<string>
  /** told about every inbound connection whose handshake failed (libp2p only debug-logs them) */
  onInboundFailure?: (remoteAddr: Multiaddr, err: Error) => void
  /** find peers on the LAN by mDNS, asking and answering under this service tag (see mdnsServiceTag) */
  mdns?: { serviceTag: string }
}

/** Noise always, yamux, identify, ping and gossipsub over TCP; an optional private network. */
export async function createMeshLibp2p (opts: Libp2pOptions): Promise<MeshLibp2p> {
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen, announce: opts.announce ?? [] },
    transports: [opts.onInboundFailure != null ? reportInboundFailures(corkedTcp(), opts.onInboundFailure) : corkedTcp()],
    connectionEncrypters: [noise()],
    connectionManager: { inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_SECOND },
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: STREAM_WINDOW_BYTES, maxReadBufferLength: STREAM_READ_BUFFER_BYTES } })],
    ...(opts.psk != null ? { connectionProtector: pskProtector(opts.psk) } : {}),
    ...(opts.blocked != null ? { connectionGater: partitionGater(opts.blocked) } : {}),
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        fallbackToFloodsub: false,
        // many nodes share a host (bridged Slurm tasks and Dask workers, NAT): the default penalty for peers behind
        // one IP (remembered an hour) made a node ignore every new peer from its host past about 14 (test/mesh/colocation)
        scoreParams: { IPColocationFactorWeight: 0 }
      }),
      // libp2p feeds a service's discovered peers to its peer store as it does `peerDiscovery` entries
      ...(opts.mdns != null ? { mdns: mdns({ serviceTag: opts.mdns.serviceTag }) } : {})
    },
    start: false
  })
}

type ProtectorFactory = ReturnType<typeof preSharedKey>

/** The pre-shared-key protector, its protected streams sending at most PSK_MAX_CHUNK_BYTES per piece. */
export function pskProtector (psk: Uint8Array): ProtectorFactory {
  const factory = preSharedKey({ psk })
  return () => {
    const protector = factory()
    const protect = protector.protect.bind(protector)
    protector.protect = async (connection, options) => {
      const stream = await protect(connection, options)
      ;(stream as { maxMessageSize?: number }).maxMessageSize = PSK_MAX_CHUNK_BYTES
      return stream
    }
    return protector
  }
}

/** Refuses to dial, or finish a handshake with, the peers in `blocked` while they are in it. */
function partitionGater (blocked: ReadonlySet<string>): { denyDialPeer: (p: { toString: () => string }) => boolean, denyInboundEncryptedConnection: (p: { toString: () => string }) => boolean, denyOutboundEncryptedConnection: (p: { toString: () => string }) => boolean } {
  const deny = (peer: { toString: () => string }): boolean => blocked.has(peer.toString())
  return { denyDialPeer: deny, denyInboundEncryptedConnection: deny, denyOutboundEncryptedConnection: deny }
}
