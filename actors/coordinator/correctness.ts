import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { CsvCursor } from '../../protocols/campaign/csv.ts'
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
const CHUNK_BYTES = 64 * 1024

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
  const expectedValues = opts.reference.format === 'csv'
    ? csvColumn(opts.referencePath, opts.reference.columns?.indexOf(opts.column) ?? -1)
    : jsonlKey(opts.referencePath, opts.column)
  for await (const expected of expectedValues) {
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

/** The numbers in one column of a CSV with a header, row by row, read as workers read their slices. */
async function * csvColumn (path: string, index: number): AsyncGenerator<number> {
  const cursor = new CsvCursor()
  let header = true
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES })
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      cursor.feed(chunk, false)
      yield * records()
    }
    cursor.feed('', true)
    yield * records()
  } finally {
    stream.destroy()
  }
  function * records (): Generator<number> {
    while (cursor.next()) {
      if (header) header = false
      else yield index >= 0 && index < cursor.fieldCount ? cursor.number(index) : NaN
    }
  }
}

/** The values of one key of a JSONL file, row by row (blank lines are no row, as for workers). */
async function * jsonlKey (path: string, key: string): AsyncGenerator<number> {
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    if (line.trim() !== '') yield Number((JSON.parse(line) as Record<string, unknown>)[key])
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
