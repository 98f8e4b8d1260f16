import { createReadStream } from 'node:fs'
import { CsvCursor, CsvSyntaxError } from '../../../protocols/campaign/csv.ts'

/** Bad input data: the same on every retry, so the shard is not retried. */
export class InputDataError extends Error {
  override name = 'InputDataError'
}

/**
 * The slice is read in chunks of this size: memory stays bounded whatever the
 * shard size (a whole slice as one string would also hit V8's ~512 MB string
 * limit), and the node's event loop runs between chunks. Measured: 64 KiB
 * strings stay in V8's young generation; 1 MiB ones go to large-object space,
 * and decoding and joining them cost as much again as parsing.
 */
const CHUNK_BYTES = 64 * 1024

export interface RowReaderOptions {
  format: 'csv' | 'jsonl'
  /** the data set's CSV header names (CSV only) */
  dataColumns: readonly string[] | undefined
  /** the columns (CSV) or keys (JSONL) of one input row, in order */
  inputColumns: readonly string[]
  /** global index of the slice's first row, for messages */
  firstRow: number
}

/** Reads a shard's data slice into float32 batches, row by row, in the order of inputColumns. */
export interface RowReader {
  /** Writes up to maxRows rows into target, row-major; resolves to how many (0 at the end). */
  fill: (target: Float32Array, maxRows: number) => Promise<number>
  /** stop reading early (an error or a cancel) */
  close: () => void
}

/** Rows from bytes [start, end) of `path` (the whole file without bounds). */
export function openRowReader (data: { path: string, start?: number, end?: number }, opts: RowReaderOptions): RowReader {
  // checks that need no data come first, so a bad workload fails without touching the file
  const readRow = opts.format === 'csv' ? csvRows(opts) : jsonlRows(opts)
  const start = data.start ?? 0
  // createReadStream's end is inclusive; an empty range must read nothing
  const stream = data.end != null && data.end <= start
    ? createReadStream(data.path, { encoding: 'utf8', start: 0, end: -1 })
    : createReadStream(data.path, { encoding: 'utf8', highWaterMark: CHUNK_BYTES, start, ...(data.end != null ? { end: data.end - 1 } : {}) })
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<string>
  const width = opts.inputColumns.length
  return {
    fill: async (target, maxRows) => {
      let n = 0
      while (n < maxRows) {
        const got = readRow.next(target, n * width)
        if (got === 'row') n++
        else if (got === 'end') break
        else {
          const step = await chunks.next()
          readRow.feed(step.done === true ? '' : step.value, step.done === true)
        }
      }
      return n
    },
    close: () => { stream.destroy() }
  }
}

/** One format's parser: fed chunks of text, it writes one row at a time. */
interface RowSource {
  feed: (chunk: string, last: boolean) => void
  /** 'more': it needs the next chunk before it can say */
  next: (target: Float32Array, offset: number) => 'row' | 'end' | 'more'
}

function csvRows (opts: RowReaderOptions): RowSource {
  const header = opts.dataColumns
  if (header === undefined || header.length === 0) {
    throw new InputDataError('the data set is CSV but names no columns (data.columns); the campaign loader takes them from the CSV header')
  }
  const indexes = opts.inputColumns.map((column) => {
    const at = header.indexOf(column)
    if (at < 0) throw new InputDataError(`input column '${column}' is not a column of the data set (it has: ${listed(header)})`)
    return at
  })
  const cursor = new CsvCursor()
  let row = opts.firstRow
  return {
    feed: (chunk, last) => { cursor.feed(chunk, last) },
    next: (target, offset) => {
      let found: boolean
      try {
        found = cursor.next()
      } catch (err) {
        if (err instanceof CsvSyntaxError) throw new InputDataError(`row ${row} of the shard's slice is not valid CSV: ${err.message}`)
        throw err
      }
      if (!found) return cursor.needsMore ? 'more' : 'end'
      if (cursor.fieldCount !== header.length) {
        throw new InputDataError(`row ${row} (line ${cursor.line} of the shard's slice) has ${cursor.fieldCount} fields, but the data set has ${header.length} columns`)
      }
      for (let j = 0; j < indexes.length; j++) {
        const value = cursor.number(indexes[j] as number)
        if (Number.isNaN(value)) {
          throw new InputDataError(`row ${row}, column '${opts.inputColumns[j]}': ${clip(JSON.stringify(cursor.field(indexes[j] as number)))} is not a number`)
        }
        target[offset + j] = value
      }
      row++
      return 'row'
    }
  }
}

function jsonlRows (opts: RowReaderOptions): RowSource {
  const columns = opts.inputColumns
  let text = ''
  let pos = 0
  let more = true
  let line = 0
  let row = opts.firstRow
  return {
    feed: (chunk, last) => {
      text = text.slice(pos) + chunk
      pos = 0
      more = !last
    },
    next: (target, offset) => {
      let content = ''
      while (content === '') {
        let end = text.indexOf('\n', pos)
        if (end < 0) {
          if (more) return 'more'
          if (pos >= text.length) return 'end'
          end = text.length
        }
        content = text.slice(pos, end).trim()
        pos = end + 1
        line++
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(content)
      } catch (err) {
        throw new InputDataError(`row ${row} (line ${line} of the shard's slice) is not JSON: ${err instanceof Error ? err.message : String(err)}`)
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new InputDataError(`row ${row} (line ${line} of the shard's slice) is not a JSON object; JSONL data rows are objects keyed by column`)
      }
      const record = parsed as Record<string, unknown>
      for (let j = 0; j < columns.length; j++) {
        const column = columns[j] as string
        const value = record[column]
        if (typeof value !== 'number') {
          const got = Object.hasOwn(record, column) ? `is ${clip(JSON.stringify(value) ?? String(value))}, not a number` : `is missing (the row has: ${listed(Object.keys(record))})`
          throw new InputDataError(`row ${row}, column '${column}' ${got}`)
        }
        target[offset + j] = value
      }
      row++
      return 'row'
    }
  }
}

function listed (names: readonly string[]): string {
  return names.length <= 20 ? names.join(', ') : `${names.slice(0, 20).join(', ')}, … (${names.length} in all)`
}

function clip (text: string): string {
  return text.length <= 80 ? text : `${text.slice(0, 80)}…`
}
