import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../actors/coordinator/status.ts'
import { LocalNode, type LocalNodeSpec } from '../bootstrap/local.ts'
import { ApiClient, resolveApiTarget } from '../node/api/client.ts'
import type { PeerJson } from '../node/api/routes.ts'
import { delay } from '../protocols/common/signals.ts'
import { WORKER_CAPABILITY } from './worker-role.ts'

// Meshes of real zp-node processes on loopback for the campaign and onnx suites, and the timing of a campaign through the control API.

const WORKER_PLUGIN = fileURLToPath(new URL('./worker-role.ts', import.meta.url))
/** the fixture modules the suites' campaigns name */
const CAMPAIGN_FIXTURES = fileURLToPath(new URL('../test/fixtures/campaigns', import.meta.url))
const READY_TIMEOUT_MS = 60_000
const CAMPAIGN_TIMEOUT_MS = 300_000
/** status polls; the end time comes from the coordinator's endedAt, so this only bounds how late the bench notices */
const POLL_MS = 100

/** Spawns a zp-node that stops with `stack`, and is killed outright if the bench process exits first. */
export async function spawnNode (spec: LocalNodeSpec, stack: AsyncDisposableStack): Promise<LocalNode> {
  const node = await LocalNode.spawn(spec)
  const kill = (): void => { node.kill('SIGKILL') }
  process.once('exit', kill)
  stack.defer(async () => {
    await node.stop(5000)
    process.off('exit', kill)
  })
  return node
}

export interface BenchMesh {
  coordinator: LocalNode
  /** nodes that advertise WORKER_CAPABILITY; empty for a one-node mesh, whose coordinator runs the shards */
  workers: LocalNode[]
  api: ApiClient
}

export interface MeshOptions {
  /** folder for the nodes' data dirs */
  dir: string
  workers: number
  /** zp-node flags of every node (after the bench's own) */
  args?: string[]
  workerArgs?: string[]
  signal: AbortSignal
}

/**
 * A coordinator and `workers` nodes joined through it (so they trust it), no
 * ONNX probe (it would compete for the CPU, and the CPU provider needs none).
 * Resolves once the coordinator lists every node alive with its capabilities.
 */
export async function startMesh (opts: MeshOptions, stack: AsyncDisposableStack): Promise<BenchMesh> {
  const args = ['--no-onnx-probe', '--data-root', CAMPAIGN_FIXTURES, ...(opts.args ?? [])]
  const coordinator = await spawnNode({ name: 'coordinator', dataDir: join(opts.dir, 'coordinator'), args }, stack)
  const info = await coordinator.ready({ signal: opts.signal })
  const workers: LocalNode[] = []
  for (let i = 0; i < opts.workers; i++) {
    workers.push(await spawnNode({
      name: `worker-${i + 1}`,
      dataDir: join(opts.dir, `worker-${i + 1}`),
      join: info.multiaddrs[0]!,
      args: [...args, '--probe-plugin', WORKER_PLUGIN, ...(opts.workerArgs ?? [])]
    }, stack))
  }
  await Promise.all(workers.map(async w => await w.ready({ signal: opts.signal })))
  const api = new ApiClient(await resolveApiTarget({ dataDir: coordinator.dataDir }))
  const deadline = Date.now() + READY_TIMEOUT_MS
  for (;;) {
    const peers = await api.get<PeerJson[]>('/v1/peers', { signal: opts.signal })
    const ready = (name: string, capability?: string): boolean => peers.some(p => p.name === name && p.state === 'alive' &&
      p.capabilities != null && (capability == null || p.capabilities.capabilities[capability]?.status === 'ok'))
    if (ready('coordinator') && workers.every(w => ready(w.name, WORKER_CAPABILITY))) break
    if (Date.now() > deadline) throw new Error(`the bench mesh did not form within ${READY_TIMEOUT_MS} ms; the coordinator lists ${peers.map(p => `${p.name} ${p.state}`).join(', ')}`)
    await delay(POLL_MS, opts.signal)
  }
  return { coordinator, workers, api }
}

export interface CampaignTiming {
  status: CampaignStatus
  /** POST /v1/campaigns: loading the spec, scanning the data set, storing its files as blobs */
  submitMs: number
  /** from just before the POST to the coordinator's endedAt */
  totalMs: number
  /** the coordinator's startedAt (first lease) to endedAt (last result stored) */
  runMs: number
  /** CPU time (ms) of each node's process over the campaign, by node name */
  cpuMs: Record<string, number>
}

/** Submits a campaign spec through the coordinator's API and follows it to SUCCEEDED. */
export async function runCampaign (mesh: BenchMesh, spec: Record<string, unknown>, baseDir: string, signal: AbortSignal): Promise<CampaignTiming> {
  const nodes = [mesh.coordinator, ...mesh.workers]
  const cpu0 = await Promise.all(nodes.map(async n => await processCpuMs(n.pid)))
  const t0 = Date.now()
  const submitted = await mesh.api.request<CampaignStatus>('POST', '/v1/campaigns', { body: { spec, baseDir }, timeoutMs: 120_000, signal })
  const submitMs = Date.now() - t0
  let status = submitted
  const deadline = t0 + CAMPAIGN_TIMEOUT_MS
  while (status.endedAt == null) {
    if (Date.now() > deadline) throw new Error(`campaign ${status.id} did not finish within ${CAMPAIGN_TIMEOUT_MS} ms: ${status.shards.done}/${status.shards.total} shards done`)
    await delay(POLL_MS, signal)
    status = await mesh.api.get<CampaignStatus>(`/v1/campaigns/${submitted.id}`, { signal })
  }
  const cpu1 = await Promise.all(nodes.map(async n => await processCpuMs(n.pid)))
  if (status.state !== 'SUCCEEDED') {
    throw new Error(`campaign ${status.id} ended ${status.state}: ${status.deadLetters.map(d => `shard ${d.index}: ${d.error}`).slice(0, 3).join('; ')}`)
  }
  return {
    status,
    submitMs,
    totalMs: status.endedAt - t0,
    runMs: status.endedAt - (status.startedAt ?? t0),
    cpuMs: Object.fromEntries(nodes.map((n, i) => [n.name, cpu1[i]! - cpu0[i]!]))
  }
}

/** Linux's USER_HZ: /proc reports CPU time in these ticks on every common architecture */
const TICKS_PER_SECOND = 100

/** User + system CPU time (ms) a process (all its threads) has used, from /proc/<pid>/stat. */
export async function processCpuMs (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // the command name (field 2) may hold spaces: count fields after its closing parenthesis
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
}
