import { createHash, type Hash } from 'node:crypto'
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
  /** sha256 of each shard's bytes, computed in the same pass: workers check their slice against it */
  sliceHashes: string[]
  /** keys of the first JSONL row */
  firstKeys?: string[]
}

/** Where a scan can copy the bytes it reads (a blob store writer). */
export interface ChunkSink {
  write: (chunks: readonly Uint8Array[]) => Promise<void>
}

export class DataSetError extends Error {
  override name = 'DataSetError'
}

const NL = 0x0a
const QUOTE = 0x22

/**
 * Reads the data set once, streaming: counts rows, reads the CSV header,
 * records shard boundaries every `perShard` rows and hashes each shard's
 * bytes. Rows end at a newline outside double quotes (CSV fields may hold
 * newlines when quoted); newlines are found with indexOf, so a large file
 * costs about what reading it costs.
 */
export async function scanDataSet (path: string, format: 'csv' | 'jsonl', perShard: number, signal?: AbortSignal, copyTo?: ChunkSink): Promise<DataSetIndex> {
  const offsets: number[] = []
  const sliceHashes: string[] = []
  let rows = 0
  let header: string | undefined
  let firstRow: string | undefined
  let lineStart = 0
  let lineHasContent = false
  let inQuotes = false
  /** bytes of the current line, kept only while the header or the first JSONL row is being read */
  let captured: Buffer[] = []
  /** the shard being hashed, and how far into the file its hash has been fed */
  let hash: Hash | undefined
  let fedUpTo = 0
  const chunks: Array<{ start: number, buf: Buffer }> = []

  /** Feeds file bytes [from, to) to `h`, from the chunks still held. */
  const feed = (h: Hash | undefined, from: number, to: number): void => {
    for (const c of chunks) {
      const a = Math.max(from, c.start)
      const b = Math.min(to, c.start + c.buf.length)
      if (a < b && h != null) h.update(c.buf.subarray(a - c.start, b - c.start))
    }
    fedUpTo = Math.max(fedUpTo, to)
  }
  const capturing = (): boolean => (format === 'csv' && header == null) || (format === 'jsonl' && rows === 0)

  const endLine = (end: number): void => {
    if (lineHasContent) {
      if (format === 'csv' && header == null) {
        header = Buffer.concat(captured).toString('utf8')
        feed(undefined, fedUpTo, end)
      } else {
        if (rows % perShard === 0) {
          // a new shard begins at this line: close the previous one's hash
          feed(hash, fedUpTo, lineStart)
          if (hash != null) sliceHashes.push(hash.digest('hex'))
          hash = createHash('sha256')
          offsets.push(lineStart)
        }
        if (format === 'jsonl' && rows === 0) firstRow = Buffer.concat(captured).toString('utf8')
        rows++
      }
    }
    captured = []
    lineStart = end
    lineHasContent = false
  }

  let pos = 0
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal })
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    // the copy into the blob store is written while this chunk is scanned: one read of the file serves both
    const copying = copyTo?.write([chunk])
    chunks.push({ start: pos, buf: chunk })
    // the next quote at or after i: found once and carried forward, so a chunk is searched for quotes once
    let quote = format === 'csv' ? chunk.indexOf(QUOTE) : -1
    let i = 0
    while (i < chunk.length) {
      const nl = chunk.indexOf(NL, i)
      const end = nl === -1 ? chunk.length : nl
      while (quote !== -1 && quote < end) {
        inQuotes = !inQuotes
        quote = chunk.indexOf(QUOTE, quote + 1)
      }
      if (!lineHasContent) lineHasContent = hasContent(chunk, i, end)
      if (capturing()) captured.push(chunk.subarray(i, end))
      if (nl === -1) break
      i = nl + 1
      if (inQuotes) {
        if (capturing()) captured.push(chunk.subarray(nl, nl + 1))
        continue
      }
      endLine(pos + nl + 1)
    }
    pos += chunk.length
    // hash what is settled, and forget chunks no open line or shard still needs
    if (hash != null) feed(hash, fedUpTo, lineStart)
    const keepFrom = Math.min(lineStart, fedUpTo)
    while (chunks.length > 0 && chunks[0]!.start + chunks[0]!.buf.length <= keepFrom) chunks.shift()
    await copying
  }
  if (inQuotes) throw new DataSetError(`${path}: a quoted CSV field is never closed (row ${rows + 1})`)
  endLine(pos)
  if (hash != null) {
    feed(hash, fedUpTo, pos)
    sliceHashes.push(hash.digest('hex'))
  }
  offsets.push(pos)
  if (rows === 0) offsets.splice(0, offsets.length, pos, pos)

  const index: DataSetIndex = { format, rows, offsets, sliceHashes }
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

/** Anything but spaces, tabs and CR in [from, to)? Stops at the first such byte. */
function hasContent (buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const b = buf[i]
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return true
  }
  return false
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
