import { createReadStream } from 'node:fs'

export interface DataSetIndex {
  format: 'csv' | 'jsonl'
  /** data rows (not counting a CSV header or blank lines) */
  rows: number
  /** CSV header names */
  columns?: string[]
  /**
   * Byte offset where each shard's first row begins, plus the end of the last
   * row: shard i is bytes [offsets[i], offsets[i+1]). Numbers, not objects, so
   * a million-shard data set costs 8 MB here, not a million shard records.
   */
  offsets: number[]
  /** keys of the first JSONL row */
  firstKeys?: string[]
}

export class DataSetError extends Error {
  override name = 'DataSetError'
}

const NL = 0x0a
const CR = 0x0d
const QUOTE = 0x22

/**
 * Reads the data set once, streaming: counts rows, reads the CSV header and
 * records shard boundaries every `perShard` rows. Rows end at a newline
 * outside double quotes (CSV fields may hold newlines when quoted).
 */
export async function scanDataSet (path: string, format: 'csv' | 'jsonl', perShard: number, signal?: AbortSignal): Promise<DataSetIndex> {
  const offsets: number[] = []
  let rows = 0
  let header: string | undefined
  let firstRow: string | undefined
  let pos = 0
  let lineStart = 0
  let inQuotes = false
  let lineHasContent = false
  let pending: Buffer[] = []

  const endLine = (end: number): void => {
    if (lineHasContent) {
      if (format === 'csv' && header == null) {
        header = Buffer.concat(pending).toString('utf8', 0, end - lineStart)
      } else {
        if (rows % perShard === 0) offsets.push(lineStart)
        if (format === 'jsonl' && rows === 0) firstRow = Buffer.concat(pending).toString('utf8', 0, end - lineStart)
        rows++
      }
    }
    pending = []
    lineStart = end
    lineHasContent = false
  }

  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal })
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let from = 0
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!
      if (format === 'csv' && b === QUOTE) inQuotes = !inQuotes
      if (b === NL && !inQuotes) {
        if ((header == null && format === 'csv') || (format === 'jsonl' && rows === 0)) pending.push(chunk.subarray(from, i))
        endLine(pos + i + 1)
        from = i + 1
      } else if (b !== CR && b !== 0x20 && b !== 0x09) {
        lineHasContent = true
      }
    }
    if ((header == null && format === 'csv') || (format === 'jsonl' && rows === 0)) pending.push(chunk.subarray(from))
    pos += chunk.length
  }
  if (inQuotes) throw new DataSetError(`${path}: a quoted CSV field is never closed (row ${rows + 1})`)
  endLine(pos)
  offsets.push(pos)
  if (rows === 0) offsets.splice(0, offsets.length, pos, pos)

  const index: DataSetIndex = { format, rows, offsets }
  if (format === 'csv') {
    if (header == null) throw new DataSetError(`${path}: the CSV file is empty (no header row)`)
    index.columns = parseCsvLine(header.replace(/\r$/, ''))
  } else if (firstRow != null) {
    let first: unknown
    try {
      first = JSON.parse(firstRow)
    } catch (err) {
      throw new DataSetError(`${path}: line 1 is not JSON (${(err as Error).message})`)
    }
    if (first == null || typeof first !== 'object' || Array.isArray(first)) throw new DataSetError(`${path}: JSONL rows must be objects; line 1 is not`)
    index.firstKeys = Object.keys(first)
  }
  return index
}

/** Splits one CSV record (RFC 4180: quoted fields, "" for a quote inside quotes). */
export function parseCsvLine (line: string): string[] {
  const out: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { field += '"'; i++ } else if (c === '"') quoted = false
      else field += c
    } else if (c === '"') quoted = true
    else if (c === ',') { out.push(field); field = '' } else field += c
  }
  out.push(field)
  return out.map(f => f.trim())
}
