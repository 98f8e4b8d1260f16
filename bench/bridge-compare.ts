import { readdir, readFile } from 'node:fs/promises'
import { text } from 'node:stream/consumers'
import { shardSeed } from '../actors/coordinator/plan.ts'
import type { LocalNode } from '../bootstrap/local.ts'
import type { ApiClient } from '../node/api/client.ts'
import type { PeerJson } from '../node/api/routes.ts'
import type { Allocation } from '../protocols/bridge/schema.ts'
import { delay } from '../protocols/common/signals.ts'
import { runCli } from '../test/process/harness.ts'
import type { DaskPriceClient, NativeMode, PriceRow, PriceShard } from './dask-price.ts'
import { processCpuMs, runCampaign } from './mesh.ts'

// The bridge suite's second measure: the Monte Carlo campaign through Dask-bridged mesh nodes, and the same shards as native Dask tasks.

const NODES_TIMEOUT_MS = 120_000
const POLL_MS = 100

export interface Size {
  shards: number
  perShard: number
}

/** The shards the coordinator plans for `shards.iterations: { total: shards × perShard, perShard, seed }`. */
export function planShards (size: Size, seed: number): PriceShard[] {
  return Array.from({ length: size.shards }, (_, index) => ({ index, seed: shardSeed(seed, index), start: index * size.perShard, end: (index + 1) * size.perShard }))
}

export interface DaskBridge {
  alloc: Allocation
  /** the bridged zp-node processes on the Dask workers */
  pids: number[]
}

/**
 * `zp bridge dask up`, then waits until every worker's node is alive and has
 * advertised its labels (so campaigns can be leased to it).
 */
export async function daskBridgeUp (opts: { api: ApiClient, dataDir: string, scheduler: string, python: string, workers: number, signal: AbortSignal }): Promise<DaskBridge> {
  const up = await runCli('zp', ['bridge', 'dask', 'up', '--scheduler', opts.scheduler, '--python', opts.python, '--json', '--data-dir', opts.dataDir], { timeoutMs: 160_000 })
  if (up.code !== 0) throw new Error(`zp bridge dask up failed (exit ${up.code}): ${up.stderr.trim()}`)
  const alloc = JSON.parse(up.stdout) as Allocation
  const until = Date.now() + NODES_TIMEOUT_MS
  for (;;) {
    const ready = (await opts.api.get<PeerJson[]>('/v1/peers', { signal: opts.signal })).filter(p => p.state === 'alive' && p.labels['zp.bridge'] === alloc.id)
    if (ready.length === opts.workers) break
    if (Date.now() > until) throw new Error(`${ready.length} of ${opts.workers} Dask-bridged nodes alive with their labels ${NODES_TIMEOUT_MS / 1000} s after zp bridge dask up`)
    await delay(POLL_MS, opts.signal)
  }
  return { alloc, pids: await markedProcesses(`ZP_DASK_BRIDGE=${alloc.id}`) }
}

/** zp-node processes whose environment holds `mark` (what the Dask plugin started) */
async function markedProcesses (mark: string): Promise<number[]> {
  const read = async (file: string): Promise<string> => await readFile(file, 'latin1').catch(() => '')
  const found: number[] = []
  for (const pid of (await readdir('/proc')).filter(p => /^\d+$/.test(p))) {
    const [env, cmdline] = await Promise.all([read(`/proc/${pid}/environ`), read(`/proc/${pid}/cmdline`)])
    if (env.split('\0').includes(mark) && cmdline.includes('zp-node.mjs')) found.push(Number(pid))
  }
  return found
}

/** CPU time (ms) the given processes used while `fn` ran */
async function cpuDuring<T> (pids: number[], fn: () => Promise<T>): Promise<{ value: T, cpuMs: number }> {
  const total = async (): Promise<number> => (await Promise.all(pids.map(async p => await processCpuMs(p).catch(() => 0)))).reduce((a, b) => a + b, 0)
  const before = await total()
  const value = await fn()
  return { value, cpuMs: await total() - before }
}

export interface MeshPriceRun {
  seconds: number
  rows: PriceRow[]
  /** the nodes the shards ran on */
  workers: string[]
}

/** The campaign through the coordinator, run on the bridged nodes (it requires their label); its rows from the export. */
export async function meshPrice (opts: { coordinator: LocalNode, api: ApiClient, spec: Record<string, unknown>, baseDir: string, signal: AbortSignal }): Promise<MeshPriceRun> {
  const t = await runCampaign({ coordinator: opts.coordinator, workers: [], api: opts.api }, opts.spec, opts.baseDir, opts.signal)
  const { body } = await opts.api.raw('GET', `/v1/campaigns/${t.status.id}/results`, { signal: opts.signal })
  const rows = (await text(body)).split('\n').filter(l => l !== '').map((l) => {
    const { paths, sumPayoff, sumPayoffSq } = JSON.parse(l) as PriceRow
    return { paths, sumPayoff, sumPayoffSq }
  })
  return { seconds: t.totalMs / 1000, rows, workers: t.status.workers.map(w => w.name) }
}

/** The same shards as native Dask tasks; the idle mesh nodes' CPU meanwhile (`idlePids`: the coordinator and the bridged nodes). */
export async function nativePrice (client: DaskPriceClient, mode: NativeMode, shards: PriceShard[], params: Record<string, unknown>, idlePids: number[], signal: AbortSignal): Promise<{ seconds: number, rows: PriceRow[], idleCpuMs: number }> {
  const { value, cpuMs } = await cpuDuring(idlePids, async () => await client.run(mode, shards, params, signal))
  return { ...value, idleCpuMs: cpuMs }
}

/** Throws unless the rows are those of the mesh run, bit for bit (the same JS code on the same shards must give them). */
export function sameRows (what: string, rows: PriceRow[], reference: PriceRow[]): void {
  const differs = rows.findIndex((r, i) => JSON.stringify(r) !== JSON.stringify(reference[i]))
  if (rows.length !== reference.length || differs !== -1) {
    throw new Error(`${what} computed other rows than the mesh (${rows.length} rows vs ${reference.length}; first difference at shard ${differs}: ${JSON.stringify(rows[differs])} vs ${JSON.stringify(reference[differs])})`)
  }
}
