import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseCsvLine } from '../../node/campaign/dataset.ts'
import type { DataSet } from '../../protocols/campaign/spec.ts'

export interface CorrectnessReport {
  column: string
  tolerance: number
  compared: number
  withinTolerance: number
  /** rows with no result (dead-lettered shards) */
  missing: number
  matchRate: number
  maxAbsError: number
  meanAbsError: number
  worst: Array<{ row: number, expected: number, got: number | null, absError: number }>
}

const WORST = 5

/**
 * Compares an ONNX campaign's outputs with a reference column, row by row,
 * like the seeds' inference runtime: match rate within a tolerance, error
 * statistics, and the worst rows to look at first.
 */
export async function correctness (opts: {
  predictions: Float64Array
  /** rows that have a prediction */
  present: Uint8Array
  reference: DataSet
  referencePath: string
  column: string
  tolerance: number
}): Promise<CorrectnessReport> {
  const { predictions, present, tolerance } = opts
  let row = 0
  let compared = 0
  let within = 0
  let missing = 0
  let maxAbs = 0
  let sumAbs = 0
  const worst: CorrectnessReport['worst'] = []
  const columnIndex = opts.reference.columns?.indexOf(opts.column) ?? -1
  let headerSkipped = opts.reference.format !== 'csv'
  const lines = createInterface({ input: createReadStream(opts.referencePath), crlfDelay: Infinity })
  for await (const line of lines) {
    if (line.trim() === '') continue
    if (!headerSkipped) { headerSkipped = true; continue }
    const expected = Number(opts.reference.format === 'csv' ? parseCsvLine(line)[columnIndex] : (JSON.parse(line) as Record<string, unknown>)[opts.column])
    if (present[row] !== 1) {
      missing++
      worst.push({ row, expected, got: null, absError: Infinity })
    } else {
      const got = predictions[row]!
      const absError = Math.abs(got - expected)
      compared++
      sumAbs += absError
      if (absError <= tolerance) within++
      if (!(absError <= maxAbs)) maxAbs = absError
      worst.push({ row, expected, got, absError })
    }
    if (worst.length > WORST * 4) trimWorst(worst)
    row++
  }
  trimWorst(worst)
  return {
    column: opts.column,
    tolerance,
    compared,
    withinTolerance: within,
    missing,
    matchRate: row === 0 ? 1 : within / row,
    maxAbsError: maxAbs,
    meanAbsError: compared === 0 ? 0 : sumAbs / compared,
    worst: worst.filter(w => w.absError > 0)
  }
}

function trimWorst (worst: CorrectnessReport['worst']): void {
  // NaN (a non-numeric reference) sorts first: it is the worst kind of mismatch
  worst.sort((a, b) => (Number.isNaN(b.absError) ? Infinity : b.absError) - (Number.isNaN(a.absError) ? Infinity : a.absError))
  worst.splice(WORST)
}

/** The single number an ONNX result row holds in `column` (a one-element array counts). */
export function scalarOf (row: unknown, column: string): number | undefined {
  const v = (row as Record<string, unknown> | null)?.[column]
  const n = Array.isArray(v) && v.length === 1 ? v[0] : v
  return typeof n === 'number' ? n : undefined
}
