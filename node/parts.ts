import { hostname } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { ActorHost } from '../actors/runtime/host.ts'
import type { ExecTemplates } from '../actors/worker/runners/types.ts'
import { ACTOR_PROTOCOL, MAX_STREAMS } from '../protocols/actor/constants.ts'
import { ActorTransport } from '../protocols/actor/transport.ts'
import { BlobAccess } from './blobs/access.ts'
import { BlobGc, DEFAULT_BLOB_RETENTION_MS } from './blobs/gc.ts'
import { BlobService } from './blobs/service.ts'
import { BlobStore } from './blobs/store.ts'
import { dataPaths, ensureDataDir } from './datadir.ts'
import { loadExecConfig } from './exec-config.ts'
import { loadOrCreateIdentity, peerIdOf } from './identity.ts'
import { handshakeReporter } from './inbound-failures.ts'
import { createMeshLibp2p, type MeshLibp2p } from './libp2p.ts'
import { createLogger } from './logger.ts'
import { mdnsServiceTag } from './mesh-wiring.ts'
import { DEFAULT_LISTEN, type NodeOptions } from './options.ts'
import { NodeMetrics } from './metrics/metrics.ts'
import { loadPsk, type Psk } from './psk.ts'
import { openDb, Storage, type Db } from './storage.ts'
import { Trust } from './trust.ts'

/** What a node is made of, opened and built from its options; nothing started yet. */
export interface NodeParts {
  peerId: string
  name: string
  log: Logger
  psk: Psk | undefined
  execTemplates: ExecTemplates
  db: Db
  storage: Storage
  trust: Trust
  libp2p: MeshLibp2p
  blobAccess: BlobAccess
  blobs: BlobService
  gc: BlobGc
  transport: ActorTransport
  host: ActorHost
  metrics: NodeMetrics
}

/**
 * Reads the files the options name, then opens the data dir: identity,
 * logger, database, blob store, libp2p (not listening yet). A failure closes
 * what was opened.
 */
export async function openNodeParts (opts: NodeOptions): Promise<NodeParts> {
  // the files the options name first: a bad one leaves the data dir untouched
  const psk = opts.psk ?? (opts.pskFile != null ? await loadPsk(opts.pskFile) : undefined)
  const execTemplates = opts.execConfig != null ? await loadExecConfig(opts.execConfig) : {}
  await ensureDataDir(opts.dataDir)
  const paths = dataPaths(opts.dataDir)
  const { key, created } = await loadOrCreateIdentity(opts.dataDir)
  const peerId = peerIdOf(key)
  const name = opts.name ?? hostname()
  const log = (opts.logger ?? createLogger({ file: opts.logFile === false ? undefined : paths.log }))
    .child({ node: name, nodeId: peerId.slice(-8) })
  if (created) log.info({ peerId }, 'created a new node identity')
  const db = await openDb(paths.db, opts.dataDir)
  try {
    const store = await BlobStore.open(paths.blobs)
    const mdns = opts.mdns === true ? { serviceTag: mdnsServiceTag(psk?.fingerprint) } : undefined
    const libp2p = await createMeshLibp2p({
      privateKey: key,
      listen: opts.listen ?? [DEFAULT_LISTEN],
      announce: opts.announce,
      psk: psk?.bytes,
      blocked: opts.blocked,
      onInboundFailure: handshakeReporter({ log: log.child({ component: 'handshake' }), psk }),
      mdns
    })
    if (mdns != null) log.info(mdns, 'finding peers on the LAN by mDNS')
    const trust = new Trust(peerId, opts.trust ?? [], { mesh: opts.trustMesh })
    if (opts.trustMesh === true && psk == null) {
      log.warn('--trust-mesh without --psk: any host that can reach this node may run work on it; use a pre-shared key')
    }
    const metrics = new NodeMetrics()
    const blobAccess = new BlobAccess(peer => trust.isTrusted(peer))
    const transport = new ActorTransport(async (peer, signal) => await libp2p.dialProtocol(peerIdFromString(peer), ACTOR_PROTOCOL, {
      signal, maxOutboundStreams: MAX_STREAMS
    }), log.child({ component: 'actor-transport' }))
    return {
      peerId,
      name,
      log,
      psk,
      execTemplates,
      db,
      storage: new Storage(db, log.child({ component: 'storage' })),
      trust,
      libp2p,
      blobAccess,
      blobs: new BlobService({ libp2p, store, access: blobAccess, log: log.child({ component: 'blobs' }), metrics: metrics.blobs }),
      gc: new BlobGc({ store, retentionMs: opts.blobRetentionMs ?? DEFAULT_BLOB_RETENTION_MS, log: log.child({ component: 'blob-gc' }) }),
      transport,
      host: new ActorHost({ self: peerId, logger: log, trust, transport, metrics: metrics.host }),
      metrics
    }
  } catch (err) {
    await db.close().catch(() => {})
    throw err
  }
}
