import type { Command } from 'commander'
import { ApiClient, ApiClientError, resolveApiTarget } from '../api/client.ts'
import type { BootstrapAttempt, HealthJson, PeerJson } from '../api/routes.ts'
import { resolveDataDir } from '../datadir.ts'

// `zp-node health`: a probe for systemd, compose and Kubernetes. Exit 0 when the node on a data dir is up and in
// the mesh, 1 with one line saying why not.

/** What `zp-node health --json` prints. */
export interface HealthVerdict {
  healthy: boolean
  dataDir: string
  /** one line: why it is (not) healthy and what to check */
  reason: string
  /** the node's lifecycle state; absent when no node answered */
  state?: string
  /** its bootstrap addresses (zp-node join); empty for a first node */
  bootstrap?: string[]
  /** peers other than itself that are alive or suspect */
  livePeers?: number
}

/** A peer still heard from: suspect is a missed heartbeat or two, not gone. */
const LIVE = new Set<PeerJson['state']>(['alive', 'suspect'])

function tried (b: BootstrapAttempt): string {
  return `${b.address} (${b.attempts} attempt${b.attempts === 1 ? '' : 's'}, last error: ${b.lastError ?? 'none yet'})`
}

export async function checkHealth (dataDir: string, opts: { timeoutMs?: number } = {}): Promise<HealthVerdict> {
  const timeoutMs = opts.timeoutMs ?? 5_000
  let client: ApiClient
  let health: HealthJson
  let node: { state: string, bootstrap?: string[] }
  let peers: PeerJson[]
  try {
    client = new ApiClient(await resolveApiTarget({ dataDir }))
    health = await client.get<HealthJson>('/v1/health', { timeoutMs })
    node = await client.get<{ state: string, bootstrap?: string[] }>('/v1/node', { timeoutMs })
    peers = await client.get<PeerJson[]>('/v1/peers', { timeoutMs })
  } catch (err) {
    if (!(err instanceof ApiClientError)) throw err
    // resolveApiTarget's messages name the data dir already; a failed request's do not
    const why = err.message.includes(dataDir) ? err.message : `the node on ${dataDir}: ${err.message}`
    return { healthy: false, dataDir, reason: why }
  }
  const bootstrap = node.bootstrap ?? []
  const livePeers = peers.filter(p => !p.self && LIVE.has(p.state)).length
  const base = { dataDir, state: health.state, bootstrap, livePeers }
  if (health.status === 'joining') {
    return { ...base, healthy: false, reason: `still joining the mesh: no bootstrap peer has answered yet; tried ${(health.bootstrap ?? []).map(tried).join(', ')}; check that the bootstrap node runs and that this machine can reach its address and port` }
  }
  if (health.status !== 'ok') return { ...base, healthy: false, reason: `the node on ${dataDir} is ${health.state}, not running` }
  const peersText = `${livePeers} live peer${livePeers === 1 ? '' : 's'}`
  if (bootstrap.length === 0) return { ...base, healthy: true, reason: `ok: first node of its mesh (no bootstrap to wait for), ${peersText}` }
  if (livePeers === 0) {
    return { ...base, healthy: false, reason: `no live peer: the node joined through ${bootstrap.join(', ')} but hears from no peer now (all dead or gone); check the network to them (zp peers shows why each one is down)` }
  }
  return { ...base, healthy: true, reason: `ok: in the mesh, ${peersText}` }
}

export function healthCommand (program: Command): void {
  program.command('health').description('exit 0 when the node on a data dir is up and in the mesh (a live peer, or it is a first node); 1 with the reason otherwise. For systemd, compose and Kubernetes probes')
    .option('--data-dir <dir>', 'data dir of the node (default $ZP_DATA_DIR or ~/.zp)')
    .option('--json', 'print the verdict as JSON')
    .action(async (flags: { dataDir?: string, json?: boolean }) => {
      const verdict = await checkHealth(resolveDataDir(flags.dataDir))
      process.stdout.write(flags.json === true ? JSON.stringify(verdict, null, 2) + '\n' : verdict.reason + '\n')
      process.exitCode = verdict.healthy ? 0 : 1
    })
}
