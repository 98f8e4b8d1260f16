import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import type { StoredResult } from '../../protocols/campaign/replica.ts'
import type { GridValue } from '../../protocols/campaign/spec.ts'
import type { ShardPlan } from './plan.ts'

/** Shard durations kept for the histogram: the first ones in shard order (bounded memory, same bytes every time). */
export const MAX_DURATIONS = 100_000
/** Result rows kept for the sweep charts, likewise. */
export const MAX_SWEEP_ROWS = 5_000

/** What the report's charts are drawn from, gathered in the same pass over the results as the summary's totals. */
export interface ReportData {
  startedAt: number | null
  endedAt: number | null
  /** shards done per worker over time, from the audit log */
  throughput: Array<{ name: string, at: number, count: number }>
  durationsMs: number[]
  /** how many shard durations there were (only the first MAX_DURATIONS are kept) */
  durationCount: number
  /** shards done per node name */
  share: Array<{ name: string, done: number }>
  /** grid campaigns: parameter names (sorted), and rows of parameters with the result's columns */
  sweep?: { parameters: string[], rows: Array<Record<string, GridValue | number>>, total: number }
}

/** Collects durations and, for a grid campaign, each result row with the grid point it came from. */
export class ReportCollector {
  readonly durationsMs: number[] = []
  durationCount = 0
  readonly #plan: ShardPlan
  readonly #parameters: string[] | undefined
  readonly #rows: Array<Record<string, GridValue | number>> = []
  #rowCount = 0

  constructor (plan: ShardPlan, parameters?: string[]) {
    this.#plan = plan
    this.#parameters = parameters
  }

  add (index: number, result: StoredResult): void {
    this.durationCount++
    if (this.durationsMs.length < MAX_DURATIONS) this.durationsMs.push(result.durationMs)
    if (this.#parameters == null) return
    const shard = this.#plan.at(index)
    if (shard.kind !== 'grid') return
    // a row per grid point is the module contract for sweeps; other shapes cannot be matched to a point
    const matched = result.rows.length === shard.points.length
    result.rows.forEach((row, k) => {
      this.#rowCount++
      if (this.#rows.length >= MAX_SWEEP_ROWS) return
      const out: Record<string, GridValue | number> = matched ? { ...shard.points[k] } : {}
      const fields = row != null && typeof row === 'object' && !Array.isArray(row) ? Object.entries(row) : [['value', row] as const]
      for (const [name, value] of fields) {
        if (this.#parameters!.includes(name)) out[name] ??= value as GridValue
        else if (typeof value === 'number' && Number.isFinite(value)) out[name] = value
      }
      this.#rows.push(out)
    })
  }

  sweep (): ReportData['sweep'] {
    return this.#parameters != null ? { parameters: this.#parameters, rows: this.#rows, total: this.#rowCount } : undefined
  }
}

/**
 * Shards done per worker over time: the audit log's `results` records (one
 * per worker per coordinator tick, with its time and count), named through
 * `names`. A log that cannot be read gives none: the chart is left out.
 */
export async function throughputFromAudit (file: string, names: ReadonlyMap<string, string>): Promise<ReportData['throughput']> {
  const out: ReportData['throughput'] = []
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity })
  try {
    for await (const text of lines) {
      let rec: { type?: unknown, worker?: unknown, at?: unknown, last?: unknown, count?: unknown }
      try {
        rec = JSON.parse(text)
      } catch {
        continue
      }
      if (rec.type !== 'results' || typeof rec.worker !== 'string' || typeof rec.count !== 'number') continue
      const at = typeof rec.at === 'number' ? rec.at : Number.NaN
      const last = typeof rec.last === 'number' ? rec.last : at
      if (!Number.isFinite(at)) continue
      out.push({ name: names.get(rec.worker) ?? rec.worker, at: (at + last) / 2, count: rec.count })
    }
  } catch {
    return []
  }
  return out
}
