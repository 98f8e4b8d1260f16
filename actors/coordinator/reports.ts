import { appendFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { CampaignRun, WorkerStats } from './campaign.ts'
import type { CorrectnessReport } from './correctness.ts'
import type { DurationCounts } from './durations.ts'
import type { CampaignStatus } from './status.ts'

export interface AcceleratorStats {
  shards: number
  busyMs: number
}

/** What the end-of-campaign report counts, over every result stored (whichever coordinator stored it). */
export interface RunTotals {
  workers: WorkerStats[]
  accelerators: Map<string, AcceleratorStats>
  durations: DurationCounts
}

/** `runs/<run-id>/config.json`: what was run, from which commit, on what hardware. */
export async function writeConfig (runDir: string, config: {
  id: string
  specHash: string
  spec: CampaignSpec
  coordinator: { peerId: string, name: string }
  version: string
  hardware: unknown[]
  createdAt: number
}): Promise<void> {
  await mkdir(runDir, { recursive: true })
  const { spec, ...rest } = config
  await writeFile(join(runDir, 'config.json'), JSON.stringify({
    ...rest,
    createdAt: new Date(config.createdAt).toISOString(),
    name: spec.name,
    source: spec.source,
    spec
  }, null, 2) + '\n')
}

/** The counters a line of `metrics.jsonl` carries, as text to compare with the last line written. */
export function metricsOf (status: CampaignStatus): string {
  return JSON.stringify({
    state: status.state,
    ...status.shards,
    progress: round(status.progress, 4),
    rate: round(status.rate, 2),
    etaMs: status.etaMs
  })
}

/** One line of `metrics.jsonl`: the campaign's counters (from `metricsOf`) at a moment. */
export async function appendMetrics (runDir: string, metrics: string, now: number): Promise<void> {
  await appendFile(join(runDir, 'metrics.jsonl'), `{"t":${JSON.stringify(new Date(now).toISOString())},${metrics.slice(1)}\n`)
}

/** `summary.md`: counts, timings per node and per accelerator, failures, and correctness when there is a reference. */
export async function writeSummary (runDir: string, run: CampaignRun, status: CampaignStatus, totals: RunTotals, correctness?: CorrectnessReport): Promise<string> {
  const s = run.spec
  const wall = status.endedAt != null && status.startedAt != null ? status.endedAt - status.startedAt : null
  const lines = [
    `# ${s.name} (${run.id})`,
    '',
    `**${status.state}**: ${status.shards.done} of ${status.shards.total} shards done, ${status.shards.failed} failed` +
      (wall != null ? `, in ${seconds(wall)}` : '') + '.',
    '',
    `- Workload: ${describeWorkload(s)}`,
    `- Shards: ${describeShards(run)}`,
    `- Priority ${s.priority}; retries: up to ${s.retry.maxAttempts} attempts, backoff from ${s.retry.initialDelayMs} ms ×${s.retry.backoffFactor}; shard timeout ${seconds(s.shardTimeoutMs)}`,
    `- Started ${status.startedAt != null ? new Date(status.startedAt).toISOString() : '-'}, ended ${status.endedAt != null ? new Date(status.endedAt).toISOString() : '-'}`,
    ...(s.source.file != null ? [`- Spec: ${s.source.file}${s.source.gitCommit != null ? ` at ${s.source.gitCommit.slice(0, 12)}${s.source.gitDirty === true ? ' (modified)' : ''}` : ''}`] : []),
    '',
    '## Per node',
    '',
    '| node | shards done | failed attempts | busy | mean per shard |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...totals.workers.sort((a, b) => a.name.localeCompare(b.name)).map(w =>
      `| ${w.name} | ${w.done} | ${w.failed} | ${seconds(w.busyMs)} | ${w.done > 0 ? ms(w.busyMs / w.done) : '-'} |`),
    '',
    '## Per accelerator',
    '',
    '| accelerator | shards | busy | mean per shard |',
    '| --- | ---: | ---: | ---: |',
    ...[...totals.accelerators].sort(([a], [b]) => a.localeCompare(b)).map(([name, a]) =>
      `| ${name} | ${a.shards} | ${seconds(a.busyMs)} | ${ms(a.busyMs / a.shards)} |`)
  ]
  const dead = run.deadLetters()
  if (dead.length > 0) {
    lines.push('', `## Failures (${dead.length} dead-lettered shards)`, '', '| shard | attempts | last error |', '| ---: | ---: | --- |',
      ...dead.map(d => `| ${d.index} | ${d.attempts} | ${d.error.split('\n')[0]!.replace(/\|/g, '\\|').slice(0, 300)} |`))
  }
  if (correctness != null) {
    const c = correctness
    lines.push('', '## Correctness', '',
      `Against reference column \`${c.column}\`, tolerance ${c.tolerance}: **${(c.matchRate * 100).toFixed(2)}%** of rows match ` +
      `(${c.withinTolerance} of ${c.compared + c.missing}${c.missing > 0 ? `, ${c.missing} without a result` : ''}); ` +
      `max abs error ${c.maxAbsError.toExponential(3)}, mean ${c.meanAbsError.toExponential(3)}.`)
    if (c.worst.length > 0) {
      lines.push('', '| worst rows | expected | got | abs error |', '| ---: | ---: | ---: | ---: |',
        ...c.worst.map(w => `| ${w.row} | ${w.expected} | ${w.got ?? '(none)'} | ${Number.isFinite(w.absError) ? w.absError.toExponential(3) : '-'} |`))
    }
  }
  const text = lines.join('\n') + '\n'
  await writeFile(join(runDir, 'summary.md'), text)
  if (correctness != null) await writeFile(join(runDir, 'correctness.json'), JSON.stringify(correctness, null, 2) + '\n')
  return text
}

function describeWorkload (s: CampaignSpec): string {
  const w = s.workload
  switch (w.kind) {
    case 'module': return `module ${w.module.name} (sha256 ${w.module.hash.slice(0, 12)})`
    case 'exec': return `exec template \`${w.command}\``
    case 'onnx': return `onnx ${w.model.name} (sha256 ${w.model.hash.slice(0, 12)}) over ${w.data.blob.name} (${w.data.rows} rows), batch ${w.batchSize}`
  }
}

function describeShards (run: CampaignRun): string {
  const sh = run.spec.shards
  const base = `${run.total} shards of ${sh.perShard}`
  switch (sh.kind) {
    case 'rows': return `${base} rows`
    case 'iterations': return `${base} iterations (${sh.total} in all), seed ${sh.seed}`
    case 'grid': return `${base} grid points (${run.plan.items} in all: ${Object.keys(sh.parameters).sort().join(' × ')})`
  }
}

function round (n: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(n * f) / f
}

function seconds (msValue: number): string {
  return msValue < 60_000 ? `${(msValue / 1000).toFixed(1)} s` : `${(msValue / 60_000).toFixed(1)} min`
}

function ms (value: number): string {
  return value < 1000 ? `${value.toFixed(1)} ms` : seconds(value)
}
