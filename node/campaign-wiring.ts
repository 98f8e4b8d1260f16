import { resolve } from 'node:path'
import pkg from '../package.json' with { type: 'json' }
import type { ExecTemplates } from '../actors/worker/runners/types.ts'
import type { BlobAccess } from './blobs/access.ts'
import { NodeBridges } from './bridges.ts'
import { CampaignService } from './campaign/service.ts'
import { dataPaths } from './datadir.ts'
import type { ZpNode } from './node.ts'
import type { NodeOptions } from './options.ts'

/**
 * A node's campaigns (coordinator, worker, replica and detached actors, and
 * their REST face) and its bridges, wired to the node's parts.
 */
export function openCampaigns (node: ZpNode, opts: NodeOptions, own: { access: BlobAccess, execTemplates: ExecTemplates }): { campaigns: CampaignService, bridges: NodeBridges } {
  const bridges = new NodeBridges({
    storage: node.storage,
    log: node.log,
    dataDir: node.dataDir,
    peers: async () => await node.peers(),
    announced: () => node.multiaddrs(),
    ...(opts.pskFile != null ? { pskFile: opts.pskFile } : {}),
    ...(opts.pskFile == null && node.psk != null ? { pskText: new TextDecoder().decode(node.psk.bytes) } : {})
  })
  const campaigns = new CampaignService({
    self: node.peerId,
    name: node.name,
    version: pkg.version,
    host: node.host,
    storage: node.storage,
    runsDir: dataPaths(node.dataDir).runs,
    log: node.log,
    blobs: node.blobs,
    access: own.access,
    gc: node.gc,
    slots: node.slots().total,
    execTemplates: own.execTemplates,
    capabilities: () => node.capabilities,
    peers: async () => await node.peers(),
    setBusy: (busy) => { node.setBusySlots(busy) },
    isTrusted: (peer) => node.trust.isTrusted(peer),
    defaultReplicas: opts.replicas,
    resume: opts.resume,
    dataRoots: opts.dataRoots,
    bridges,
    metrics: node.metrics,
    ...(opts.execConfig != null ? { execConfig: resolve(opts.execConfig) } : {})
  })
  return { campaigns, bridges }
}
