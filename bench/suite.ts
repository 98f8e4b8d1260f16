import type { MachineInfo } from './machine.ts'
import type { Stats } from './stats.ts'

/** One measured number, with its unit and what it was computed from. */
export interface Figure {
  value: number
  /** 'ops/s', 'ms', 'ratio', 'MB/s', … (the report formats by unit) */
  unit: string
  /** the distribution behind `value` (latencies, one duration per run, …) */
  stats?: Stats
  /** the raw measurements, where they are few enough to keep (per-second throughput, one duration per run) */
  samples?: number[]
}

/** One line of a suite's table: a measured case and its figures by key. */
export interface Row {
  name: string
  figures: Record<string, Figure>
}

/** A table column: a figure's value, or one statistic of it (`stat: 'p99'`). */
export interface Column {
  label: string
  figure: string
  stat?: keyof Stats
}

/** What a suite measured. */
export interface SuiteOutput {
  /** one line for the report: what was measured and how */
  method: string
  parameters: Record<string, unknown>
  columns: Column[]
  rows: Row[]
  /** caveats worth a line each under the table */
  notes?: string[]
}

export interface SuiteContext {
  /** aborted on Ctrl-C: stop measuring, clean up, and throw */
  signal: AbortSignal
  /** an empty temp folder for this suite, removed after it */
  tmp: string
  progress: (line: string) => void
}

/**
 * A named benchmark. Each suite owns its processes and nodes and must release
 * them before `run` settles, whether it succeeds or throws.
 */
export interface Suite {
  name: string
  title: string
  run: (ctx: SuiteContext) => Promise<SuiteOutput>
}

/** What `bench/results/<suite>.json` holds. */
export interface SuiteResult extends SuiteOutput {
  suite: string
  title: string
  date: string
  durationMs: number
  machine: MachineInfo
  /** 1-minute load average (this benchmark's processes included) when the suite started and ended: other work on the box skews figures */
  load: { start: number, end: number }
}
