import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import type { LivenessTimings } from '../actors/membership/liveness.ts'
import type { Labels } from '../protocols/bridge/schema.ts'
import type { ApiRoutes } from './api/server.ts'
import type { ProbeSetting } from './capabilities.ts'
import type { Psk } from './psk.ts'

export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4170'
export const DEFAULT_API = { host: '127.0.0.1', port: 7170 }

export interface NodeOptions {
  dataDir: string
  /** shown in peer tables and logs; defaults to the host name */
  name?: string
  listen?: string[]
  announce?: string[]
  /** peers to join through (zp-node join) */
  bootstrap?: Multiaddr[]
  /** find the other nodes of the mesh on the LAN by mDNS (zp-node --mdns) */
  mdns?: boolean
  pskFile?: string
  /** the pre-shared key already loaded (the CLI reads it before touching the data dir); wins over pskFile */
  psk?: Psk
  /** peer IDs whose coordinators this node works for */
  trust?: string[]
  /** trust the peer joined through (default true) */
  trustBootstrap?: boolean
  /** trust every peer of the mesh (with a pre-shared key: every holder of the key) */
  trustMesh?: boolean
  /** control API address, or false for none */
  api?: { host: string, port: number } | false
  /** a second listener serving only GET /metrics without the token, for Prometheus (zp-node --metrics; loopback or the overlay) */
  metrics?: { host: string, port: number }
  /** extra API routes (campaign endpoints mount here) */
  apiRoutes?: ApiRoutes[]
  /** capability probing; `false` skips it, a report skips it and uses that report */
  probe?: ProbeSetting
  /** re-probe this often (default 10 min) */
  probeIntervalMs?: number
  /**
   * KEY=VALUE labels campaigns can require (zp-node --label), advertised with
   * the capability report: with `probe: false` there is no report, so no
   * labels either (and such a node is matched to no campaign at all)
   */
  labels?: Labels
  slots?: number
  /** sample CPU, memory and GPU load this often for the heartbeat (default 5 s); false: never */
  loadIntervalMs?: number | false
  /** YAML/JSON file of the command templates exec workloads may run on this node */
  execConfig?: string
  /** pick up the campaigns this node coordinated when it stopped (default true) */
  resume?: boolean
  /** replicas of a campaign whose file does not say (default 2) */
  replicas?: number
  /** folders besides a campaign's own that the files it names may be in (zp-node --data-root) */
  dataRoots?: string[]
  /** how long a blob is kept once nothing references it, e.g. after its campaign ended (default 24 h; 0: at once) */
  blobRetentionMs?: number
  /** tests only: peers this node refuses connections with while they are in the set (a simulated partition) */
  blocked?: ReadonlySet<string>
  timings?: Partial<LivenessTimings>
  /** how long draining waits for running work before stopping anyway */
  drainTimeoutMs?: number
  /** drain and stop once the node has had no duty this long: no shard, no unfinished campaign coordinated, no replica of one (zp-node --exit-when-idle) */
  exitWhenIdleMs?: number
  logger?: Logger
  /** write logs to <data-dir>/logs/node.log (default true) */
  logFile?: boolean
  /** the JSON log file `zp logs` reads, when the logger writes elsewhere than <data-dir>/logs/node.log (zp-node --log-file) */
  logPath?: string
  /** write <data-dir>/node.json (default true) */
  writeNodeInfo?: boolean
}
