import type { Logger } from 'pino'
import { describeError } from '../runtime/errors.ts'
import type { WorkerStats } from './campaign.ts'
import { correctness, scalarOf, type CorrectnessReport } from './correctness.ts'
import { DurationHistogram } from './durations.ts'
import { ReportCollector, throughputFromAudit } from './report-data.ts'
import { appendMetrics, metricsOf, writeSummary, type AcceleratorStats, type RunTotals } from './reports.ts'
import { acceleratorOf } from './results.ts'
import type { CampaignSession } from './session.ts'
import { liveStatus } from './status.ts'
import type { CampaignStore } from './store.ts'
import { writeSummaryHtml } from './summary-html.ts'

/** how long an ended campaign waits for every replica to have its last state */
const SETTLE_TIMEOUT_MS = 30_000
/** …and for the replicas left once the lagging ones are dropped */
const RESETTLE_TIMEOUT_MS = 5_000

export interface FinalizeIO {
  self: string
  store: CampaignStore
  log: Logger
  now: () => number
  /** the local file of a stored blob (a reference data set) */
  blobPath: (hash: string) => string
  /** names of peers the membership knows */
  peerNames: () => ReadonlyMap<string, string>
}

/**
 * The end of a campaign, in order: the last metrics line, the reports
 * (summary.md over every stored result, whichever coordinator stored it;
 * correctness against a reference), the audit's closing record, summary.html
 * (the summary with charts, some drawn from that log), the final
 * record, and every replica holding that last state (a replica that cannot
 * is dropped from the record's replica list). Only then does status report
 * the end state.
 */
export async function finalize (session: CampaignSession, io: FinalizeIO): Promise<void> {
  const run = session.run
  const now = io.now()
  const status = liveStatus(run, run.endedAt ?? now, io.self, session.runDir)
  const metrics = metricsOf(status)
  if (metrics !== session.lastMetrics) await appendMetrics(session.runDir, metrics, now)
  session.lastMetrics = metrics
  const report = await readResults(session, io)
  const markdown = await writeSummary(session.runDir, run, status, report.totals, report.correctness)
  session.audit.append({ type: 'finished', state: run.state, done: run.doneCount, failed: run.deadCount })
  await session.audit.flushed()
  await writeSummaryHtml(session.runDir, `${run.spec.name} (${run.id})`, markdown, {
    startedAt: status.startedAt,
    endedAt: status.endedAt,
    throughput: await throughputFromAudit(session.audit.file, report.names),
    durationsMs: report.charts.durationsMs,
    durationCount: report.charts.durationCount,
    share: report.totals.workers.map(w => ({ name: w.name, done: w.done })),
    sweep: report.charts.sweep()
  }).catch((err: unknown) => { io.log.warn({ campaign: session.id, err: describeError(err) }, 'cannot write summary.html; summary.md is written') })
  const seq = await session.saveRecord({ workers: report.totals.workers, durations: report.totals.durations })
  await settle(session, seq, io.log)
  session.reported = true
  io.log.info({ campaign: session.id, state: run.state, done: run.doneCount, failed: run.deadCount, runDir: session.runDir }, `campaign ${run.spec.name} ${run.state}`)
}

/** Every replica gets the ended campaign's last state; one that cannot is dropped from the replica list. */
async function settle (session: CampaignSession, seq: number, log: Logger): Promise<void> {
  const group = session.group
  if (group == null) return
  const deadPeers = group.dead()
  const dead = group.lagging(seq).filter(p => deadPeers.includes(p))
  if (dead.length > 0) {
    // a dead replica cannot take the end: it is dropped at once rather than waited for
    log.warn({ campaign: session.id, dead }, 'dead replicas are dropped from the ended campaign\'s replica list')
    group.remove(dead)
    seq = await session.saveRecord()
  }
  try {
    await group.settled(seq, SETTLE_TIMEOUT_MS)
  } catch {
    const lagging = group.lagging(seq)
    log.warn({ campaign: session.id, lagging }, 'replicas without the ended campaign\'s last state are dropped from its replica list')
    group.remove(lagging)
    const again = await session.saveRecord()
    await group.settled(again, RESETTLE_TIMEOUT_MS).catch((err: unknown) => {
      log.warn({ campaign: session.id, err: describeError(err) }, 'not every replica has the ended campaign\'s last state')
    })
  }
  group.close()
  session.group = undefined
}

/**
 * One pass over the stored results: per-node and per-accelerator totals
 * (workers named from the campaign record, or the membership), what the
 * report's charts draw (durations, a sweep's rows), failed
 * attempts per node from the shard records, and the predictions a
 * correctness report compares.
 */
async function readResults (session: CampaignSession, io: FinalizeIO): Promise<{ totals: RunTotals, correctness?: CorrectnessReport, charts: ReportCollector, names: ReadonlyMap<string, string> }> {
  const run = session.run
  const names = new Map(io.peerNames())
  for (const [peer, name] of Object.entries(session.record.workerNames ?? {})) names.set(peer, name)
  const workers = new Map<string, WorkerStats>()
  const stats = (peer: string): WorkerStats => {
    let s = workers.get(peer)
    if (s == null) {
      s = { peer, name: names.get(peer) ?? peer, done: 0, failed: 0, busyMs: 0 }
      workers.set(peer, s)
    }
    return s
  }
  const accelerators = new Map<string, AcceleratorStats>()
  const durations = new DurationHistogram()
  const w = run.spec.workload
  const sh = run.spec.shards
  const charts = new ReportCollector(run.plan, sh.kind === 'grid' ? Object.keys(sh.parameters).sort() : undefined)
  const reference = w.kind === 'onnx' && w.reference != null && run.state !== 'CANCELLED' ? w.reference : undefined
  const rows = w.kind === 'onnx' ? w.data.rows : 0
  const predictions = reference != null ? new Float64Array(rows) : undefined
  const present = reference != null ? new Uint8Array(rows) : undefined
  for await (const { index, result } of io.store.results(session.id)) {
    charts.add(index, result)
    const s = stats(result.worker)
    s.done++
    s.busyMs += result.durationMs
    durations.add(result.durationMs)
    const acc = acceleratorOf(w.kind, result.info)
    const a = accelerators.get(acc) ?? { shards: 0, busyMs: 0 }
    a.shards++
    a.busyMs += result.durationMs
    accelerators.set(acc, a)
    if (predictions == null || present == null || w.kind !== 'onnx') continue
    for (const r of result.rows) {
      const row = (r as { row?: unknown } | null)?.row
      const value = scalarOf(r, w.output.column)
      if (typeof row === 'number' && row >= 0 && row < rows && value != null) {
        predictions[row] = value
        present[row] = 1
      }
    }
  }
  for await (const { state } of io.store.shards(session.id)) for (const peer of state.failedOn ?? []) stats(peer).failed++
  const totals = { workers: [...workers.values()], accelerators, durations: durations.snapshot() }
  if (reference == null || predictions == null || present == null || w.kind !== 'onnx') return { totals, charts, names }
  const data = reference.data ?? w.data
  return {
    totals,
    charts,
    names,
    correctness: await correctness({
      predictions, present, reference: data, referencePath: io.blobPath(data.blob.hash), column: reference.column, tolerance: reference.tolerance
    })
  }
}
