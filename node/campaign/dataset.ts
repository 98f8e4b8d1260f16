import { createHash, type Hash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { CsvCursor, CsvSyntaxError } from '../../protocols/campaign/csv.ts'

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

/** The records of a data set, found in text fed chunk by chunk (CsvCursor, or JsonlLines). */
interface RecordCursor {
  feed: (chunk: string, last: boolean) => void
  /** to the next record, keeping its text (the CSV header, the first JSONL row) */
  next: () => boolean
  /** to the next record, only finding where it starts */
  skip: () => boolean
  readonly start: number
  readonly consumed: number
}

/**
 * Reads the data set once, streaming: counts rows, reads the CSV header,
 * records shard boundaries every `perShard` rows and hashes each shard's
 * bytes. CSV records are found by the same CsvCursor that workers read their
 * slices with, so a shard's byte range holds exactly its rows. The file is
 * decoded as latin1, one character per byte, so the cursor's offsets are
 * byte offsets (every CSV delimiter is ASCII, which UTF-8 never uses inside
 * a longer character); the header's text is decoded as UTF-8 afterwards.
 */
export async function scanDataSet (path: string, format: 'csv' | 'jsonl', perShard: number, signal?: AbortSignal, copyTo?: ChunkSink): Promise<DataSetIndex> {
  const offsets: number[] = []
  const sliceHashes: string[] = []
  let rows = 0
  let columns: string[] | undefined
  let firstRow: string | undefined
  /** the shard being hashed, and how far into the file bytes have been hashed or passed over */
  let hash: Hash | undefined
  let fedUpTo = 0
  const chunks: Array<{ start: number, buf: Buffer }> = []

  /** Feeds file bytes [fedUpTo, to) to `h` (none: passes over them), from the chunks still held. */
  const feed = (h: Hash | undefined, to: number): void => {
    for (const c of chunks) {
      const a = Math.max(fedUpTo, c.start)
      const b = Math.min(to, c.start + c.buf.length)
      if (a < b && h != null) h.update(c.buf.subarray(a - c.start, b - c.start))
    }
    fedUpTo = Math.max(fedUpTo, to)
  }
  const csv = format === 'csv' ? new CsvCursor() : undefined
  const jsonl = csv == null ? new JsonlLines() : undefined
  const records: RecordCursor = csv ?? jsonl!
  /** A record (not the header) starts at byte `start`. */
  const record = (start: number): void => {
    if (rows % perShard === 0) {
      // a new shard begins at this record: close the previous one's hash
      feed(hash, start)
      if (hash != null) sliceHashes.push(hash.digest('hex'))
      hash = createHash('sha256')
      offsets.push(start)
    }
    rows++
  }
  /** Takes every record the text fed so far completes. */
  const take = (): void => {
    for (;;) {
      const header = csv != null && columns == null
      const keepText = header || (jsonl != null && rows === 0)
      if (!(keepText ? records.next() : records.skip())) return
      if (header) {
        columns = Array.from({ length: csv.fieldCount }, (_, i) => utf8(csv.field(i)).trim())
        continue
      }
      if (keepText) firstRow = utf8(jsonl!.text)
      record(records.start)
    }
  }

  let pos = 0
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal })
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // the copy into the blob store is written while this chunk is scanned: one read of the file serves both
      const copying = copyTo?.write([chunk])
      try {
        chunks.push({ start: pos, buf: chunk })
        // after the header, a chunk with no quote is lines: found by a byte search, not decoded
        const plain = csv != null && columns != null ? csv.skipPlainLines(chunk, record) : 0
        records.feed(chunk.toString('latin1', plain), false)
        take()
        pos += chunk.length
        // hash what is settled, and forget chunks no open record or shard still needs
        feed(hash, records.consumed)
        while (chunks.length > 0 && chunks[0]!.start + chunks[0]!.buf.length <= fedUpTo) chunks.shift()
      } finally {
        // awaited when the scan fails too: a write left running could fail with nobody to hear it
        await copying
      }
    }
    records.feed('', true)
    take()
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw new DataSetError(`${path}: not valid CSV: ${err.message}`)
    throw err
  }
  if (hash != null) {
    feed(hash, pos)
    sliceHashes.push(hash.digest('hex'))
  }
  offsets.push(pos)
  if (rows === 0) offsets.splice(0, offsets.length, pos, pos)

  const index: DataSetIndex = { format, rows, offsets, sliceHashes }
  if (format === 'csv') {
    if (columns == null) throw new DataSetError(`${path}: the CSV file is empty (no header row)`)
    index.columns = columns
  } else if (firstRow != null) {
    let first: unknown
    try {
      first = JSON.parse(firstRow)
    } catch {
      // not the parser's message: it quotes the file, and errors never echo file contents
      throw new DataSetError(`${path}: line 1 is not JSON`)
    }
    if (first == null || typeof first !== 'object' || Array.isArray(first)) throw new DataSetError(`${path}: JSONL rows must be objects; line 1 is not`)
    index.firstKeys = Object.keys(first)
  }
  return index
}

/** latin1 text (one character per byte) back to the UTF-8 it was read from */
function utf8 (latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8')
}

/** JSONL records: one a line; a blank line is none (the worker's reader skips the same lines). */
class JsonlLines implements RecordCursor {
  start = 0
  text = ''
  #buf = ''
  #base = 0
  #pos = 0
  #last = false

  feed (chunk: string, last: boolean): void {
    this.#buf = this.#buf.slice(this.#pos) + chunk
    this.#base += this.#pos
    this.#pos = 0
    this.#last = last
  }

  next (): boolean {
    for (;;) {
      let end = this.#buf.indexOf('\n', this.#pos)
      if (end < 0) {
        if (!this.#last || this.#pos >= this.#buf.length) return false
        end = this.#buf.length
      }
      const start = this.#pos
      this.#pos = end + 1
      const text = this.#buf.slice(start, end)
      if (text.trim() === '') continue
      this.start = this.#base + start
      this.text = text
      return true
    }
  }

  skip (): boolean {
    return this.next()
  }

  get consumed (): number {
    return this.#base + Math.min(this.#pos, this.#buf.length)
  }
}
