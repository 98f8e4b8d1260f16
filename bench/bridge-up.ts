import type { CampaignStatus } from '../actors/coordinator/status.ts'
import type { ApiClient } from '../node/api/client.ts'
import type { PeerJson } from '../node/api/routes.ts'
import type { Allocation } from '../protocols/bridge/schema.ts'
import { delay } from '../protocols/common/signals.ts'
import { runCli } from '../test/process/harness.ts'

// The bridge suite's first measure: `zp bridge … up` → the first shard running on a node it brought up.

/** `up` waits for sbatch or the Dask driver; the nodes then start as fresh Node processes */
const FIRST_SHARD_TIMEOUT_MS = 120_000
/** bridged nodes drain (up to 20 s by default) and leave; a clean leave marks them DEAD at once */
const DOWN_TIMEOUT_MS = 90_000
const POLL_MS = 50

/** One `up`, in ms from just before the `zp bridge … up` process was started. */
export interface UpSample {
  /** the `zp` process exited with the allocation */
  upReturnedMs: number
  /** the first bridged node ALIVE in the coordinator's peer table (its stateSince there) */
  aliveMs: number
  /** the first poll that saw a bridged node's capability report, which carries its labels: no lease before it */
  advertisedMs: number
  /** how long that node's capability probe took (ONNX Runtime's included), by its own report */
  probeMs: number
  /** the coordinator leased the campaign's first shard (its startedAt) */
  leasedMs: number
  /** the first poll that saw a shard running or done on a bridged node */
  runningMs: number
}

export interface BridgeUpRun {
  api: ApiClient
  /** the coordinator's data dir, where `zp` finds its API */
  dataDir: string
  engine: 'slurm' | 'dask'
  /** after `zp bridge ENGINE up` */
  upArgs: string[]
  /** a campaign that requires `labels: { bridge: ENGINE }`, so nothing of it runs before the bridge */
  spec: Record<string, unknown>
  baseDir: string
  signal: AbortSignal
}

/**
 * Submits the campaign, runs `zp bridge ENGINE up`, and polls the campaign
 * and the peers until a shard runs. Then, whatever happened: cancels the
 * campaign, brings the allocation down and waits for its nodes to leave, so
 * the next run starts from the same place.
 */
export async function timeBridgeUp (run: BridgeUpRun): Promise<UpSample> {
  const { api, signal } = run
  const peersBefore = await api.get<PeerJson[]>('/v1/peers', { signal })
  if (peersBefore.some(p => p.labels.bridge === run.engine && p.state !== 'dead')) {
    throw new Error(`a ${run.engine}-bridged node of an earlier run is still in the mesh: its allocation was not brought down`)
  }
  // no other node joins while the suite runs: a peer alive now that was not before is one the bridge started
  const aliveBefore = new Set(peersBefore.filter(p => p.state === 'alive').map(p => p.peerId))
  const campaign = await api.request<CampaignStatus>('POST', '/v1/campaigns', { body: { spec: run.spec, baseDir: run.baseDir }, timeoutMs: 60_000, signal })
  let alloc: Promise<Allocation> | undefined
  try {
    const t0 = Date.now()
    let upReturnedAt: number | undefined
    alloc = runCli('zp', ['bridge', run.engine, 'up', ...run.upArgs, '--json', '--data-dir', run.dataDir], { timeoutMs: 160_000 }).then((r) => {
      upReturnedAt = Date.now()
      if (r.code !== 0) throw new Error(`zp bridge ${run.engine} up failed (exit ${r.code}): ${r.stderr.trim()}`)
      return JSON.parse(r.stdout) as Allocation
    })
    // a failed `up` ends the polling below with its own error
    let failed: unknown
    alloc.catch((err: unknown) => { failed = err })
    let aliveAt: number | undefined
    let advertised: { at: number, probeMs: number } | undefined
    let status = campaign
    for (;;) {
      if (failed != null) throw failed
      const fresh = (await api.get<PeerJson[]>('/v1/peers', { signal })).filter(p => p.state === 'alive' && !aliveBefore.has(p.peerId))
      if (aliveAt == null && fresh.length > 0) aliveAt = Math.min(...fresh.map(p => p.stateSince))
      // labels travel with the capability report: a node that just joined has none yet, and gets no lease
      const labelled = fresh.find(p => p.labels.bridge === run.engine)
      if (advertised == null && labelled != null) advertised = { at: Date.now(), probeMs: labelled.capabilities?.durationMs ?? NaN }
      status = await api.get<CampaignStatus>(`/v1/campaigns/${campaign.id}`, { signal })
      if (status.shards.running + status.shards.done > 0) break
      if (Date.now() - t0 > FIRST_SHARD_TIMEOUT_MS) {
        // what the engine says of the allocation is the likeliest explanation
        const view = upReturnedAt == null ? undefined : await api.get<Allocation>(`/v1/bridges/${(await alloc).id}`, { signal }).catch((err: unknown) => String(err))
        throw new Error(`no shard ran within ${FIRST_SHARD_TIMEOUT_MS} ms of zp bridge ${run.engine} up: ` +
          `${view == null ? 'up has not returned' : `the allocation: ${JSON.stringify(view)}`}; ${fresh.length} new node(s) alive; campaign ${status.state}${status.waiting != null ? ` (${status.waiting})` : ''}`)
      }
      await delay(POLL_MS, signal)
    }
    const runningAt = Date.now()
    // `up` may return after the first shard ran: the zp process still has to print and exit
    await alloc
    return {
      upReturnedMs: upReturnedAt! - t0,
      aliveMs: (aliveAt ?? runningAt) - t0,
      advertisedMs: (advertised?.at ?? runningAt) - t0,
      probeMs: advertised?.probeMs ?? NaN,
      leasedMs: (status.startedAt ?? runningAt) - t0,
      runningMs: runningAt - t0
    }
  } finally {
    await api.request('POST', `/v1/campaigns/${campaign.id}/cancel`, { timeoutMs: 30_000 }).catch(() => {})
    const id = await alloc?.then(a => a.id, () => undefined)
    if (id != null) await bridgeDown(run, id)
  }
}

/** `zp bridge down ID`, then waits until the coordinator lists none of the engine's nodes alive. */
export async function bridgeDown (run: Pick<BridgeUpRun, 'api' | 'dataDir' | 'engine'>, id: string): Promise<void> {
  const down = await runCli('zp', ['bridge', 'down', id, '--data-dir', run.dataDir], { timeoutMs: 160_000 })
  if (down.code !== 0) throw new Error(`zp bridge down ${id} failed (exit ${down.code}): ${down.stderr.trim()}`)
  const until = Date.now() + DOWN_TIMEOUT_MS
  for (;;) {
    // not the suite's signal: on Ctrl-C the nodes must still be gone before the coordinator stops
    const peers = await run.api.get<PeerJson[]>('/v1/peers')
    const left = peers.filter(p => p.labels.bridge === run.engine && p.state !== 'dead')
    if (left.length === 0) return
    if (Date.now() > until) throw new Error(`${left.map(p => p.name).join(', ')} still in the mesh ${DOWN_TIMEOUT_MS / 1000} s after zp bridge down ${id}`)
    await delay(POLL_MS * 4)
  }
}
