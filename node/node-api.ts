import type { Logger } from 'pino'
import type { ActorHost } from '../actors/runtime/host.ts'
import { SYSTEM_ACTOR } from '../actors/system/system.ts'
import { bridgeRoutes } from './api/bridge-routes.ts'
import { nodeRoutes, peerJson, type NodeApiSource } from './api/routes.ts'
import { startApi, type ApiRoutes, type ApiServer } from './api/server.ts'
import { loadOrCreateToken } from './api/token.ts'
import type { NodeBridges } from './bridges.ts'
import { campaignRoutes } from './campaign/routes.ts'
import type { CampaignService } from './campaign/service.ts'
import { Dashboard } from './dashboard/app.ts'
import { queryLogFile } from './logs/file.ts'
import { PEER_LOGS_TIMEOUT_MS, type LogPorts } from './logs/mesh.ts'
import { NodeLogReplySchema } from './logs/query.ts'
import { logRoutes } from './logs/routes.ts'
import { metricsRoute } from './metrics/listener.ts'
import type { NodeMetrics } from './metrics/metrics.ts'

// The node's HTTP face: the /v1 routes, /metrics, `zp logs`' fan-out and the dashboard, on one server.

export interface NodeApiInit {
  node: NodeApiSource & { name: string, peerId: string, host: ActorHost, metrics: NodeMetrics, dataDir: string }
  campaigns: CampaignService
  bridges: NodeBridges
  logFile: string
  listen: { host: string, port: number }
  /** more routes (tests) */
  extra?: ApiRoutes[]
  log: Logger
  /** the node's lifetime: the dashboard's event streams end with it */
  signal: AbortSignal
}

/** `zp logs`: this node's log file, and every other node's through its system actor. */
export function logPorts (node: NodeApiInit['node'], logFile: string): LogPorts {
  return {
    self: node.peerId,
    peers: async () => await node.peers(),
    local: async (q) => await queryLogFile(logFile, q),
    remote: async (peer, query, signal) => await node.host.ask({ peer, name: SYSTEM_ACTOR }, { type: 'logs', query }, { signal, timeoutMs: PEER_LOGS_TIMEOUT_MS, replySchema: NodeLogReplySchema })
  }
}

export async function startNodeApi ({ node, campaigns, bridges, logFile, listen, extra, log, signal }: NodeApiInit): Promise<ApiServer> {
  const dashboard = new Dashboard({
    nodeName: () => node.name,
    peers: async () => (await node.peers()).map(peerJson),
    campaigns,
    info: () => node.info(),
    logFile,
    log,
    signal
  })
  return await startApi({
    host: listen.host,
    port: listen.port,
    token: await loadOrCreateToken(node.dataDir),
    log,
    routes: [nodeRoutes(node), metricsRoute(node.metrics), campaignRoutes(campaigns), bridgeRoutes(bridges.registry), logRoutes(logPorts(node, logFile)), dashboard.apiRoutes(), ...(extra ?? [])],
    ui: dashboard.app
  })
}
