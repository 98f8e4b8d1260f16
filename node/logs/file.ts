import { open, type FileHandle } from 'node:fs/promises'
import { matches, MAX_REPLY_BYTES, parseLine, timeOf, type LogRecord, type NodeLogQuery, type NodeLogReply } from './query.ts'

/** bytes read at a time: the file is never read whole, however large it grows */
const CHUNK_BYTES = 64 * 1024
/** a "line" longer than this is no log line of ours: it is skipped, not buffered */
const MAX_LINE_BYTES = 1024 * 1024

/**
 * Answers a query over a JSON-lines log file: the newest matching lines read
 * backwards from the end, or, with `from`, the matching lines after that
 * offset (following). Only whole lines count: one still being written is left
 * for the next read. A missing file has no lines.
 */
export async function queryLogFile (file: string, q: NodeLogQuery, maxBytes = MAX_REPLY_BYTES): Promise<NodeLogReply> {
  let fh: FileHandle
  try {
    fh = await open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], offset: 0, truncated: false }
    throw err
  }
  try {
    const { size } = await fh.stat()
    // an offset past the end: the file was truncated or replaced (log rotation); read it from its start
    return q.from != null ? await readForward(fh, size, q.from > size ? 0 : q.from, q, maxBytes) : await readNewest(fh, size, q, maxBytes)
  } finally {
    await fh.close()
  }
}

async function readNewest (fh: FileHandle, size: number, q: NodeLogQuery, maxBytes: number): Promise<NodeLogReply> {
  const chunk = Buffer.alloc(CHUNK_BYTES)
  // whole lines end at the last newline; what follows it is a line still being written
  const offset = await lastLineEnd(fh, size, chunk)
  const newestFirst: LogRecord[] = []
  let bytes = 0
  let truncated = false
  // consider one line, newest first; false once nothing older can be taken
  const take = (line: string): boolean => {
    const rec = parseLine(line)
    if (rec == null) return true
    // lines are appended in time order: one before `since` means every earlier one is too
    if (q.sinceMs != null && timeOf(rec) < q.sinceMs) return false
    if (!matches(rec, q)) return true
    const recBytes = Buffer.byteLength(line)
    if (newestFirst.length >= q.limit || bytes + recBytes > maxBytes) {
      truncated = true
      return false
    }
    newestFirst.push(rec)
    bytes += recBytes
    return true
  }
  let pos = offset
  // the start of a line that began in an earlier chunk, with its newline
  let carry = Buffer.alloc(0)
  scan: while (pos > 0) {
    const len = Math.min(CHUNK_BYTES, pos)
    pos -= len
    await fh.read(chunk, 0, len, pos)
    const buf = Buffer.concat([chunk.subarray(0, len), carry])
    // `end` is the newline that ends the line being looked at
    let end = buf.length - 1
    for (let nl = end > 0 ? buf.lastIndexOf(10, end - 1) : -1; nl !== -1; end = nl, nl = end > 0 ? buf.lastIndexOf(10, end - 1) : -1) {
      if (!take(buf.toString('utf8', nl + 1, end))) break scan
    }
    if (pos === 0) {
      take(buf.toString('utf8', 0, end))
      break
    }
    // a line too long to be one of ours is dropped; what is left of it fails to parse
    carry = end < MAX_LINE_BYTES ? Buffer.from(buf.subarray(0, end + 1)) : Buffer.alloc(0)
  }
  return { records: newestFirst.reverse(), offset, truncated }
}

async function lastLineEnd (fh: FileHandle, size: number, chunk: Buffer): Promise<number> {
  for (let pos = size; pos > 0 && size - pos < MAX_LINE_BYTES;) {
    const len = Math.min(CHUNK_BYTES, pos)
    pos -= len
    await fh.read(chunk, 0, len, pos)
    const nl = chunk.subarray(0, len).lastIndexOf(10)
    if (nl !== -1) return pos + nl + 1
  }
  return 0
}

async function readForward (fh: FileHandle, size: number, from: number, q: NodeLogQuery, maxBytes: number): Promise<NodeLogReply> {
  const records: LogRecord[] = []
  let bytes = 0
  let pos = from
  // where the last whole line read ends: the next read starts there
  let offset = from
  let carry = Buffer.alloc(0)
  const chunk = Buffer.alloc(CHUNK_BYTES)
  while (pos < size) {
    const { bytesRead } = await fh.read(chunk, 0, Math.min(CHUNK_BYTES, size - pos), pos)
    if (bytesRead === 0) break
    pos += bytesRead
    const buf = Buffer.concat([carry, chunk.subarray(0, bytesRead)])
    let start = 0
    for (let nl = buf.indexOf(10); nl !== -1; start = nl + 1, nl = buf.indexOf(10, start)) {
      const line = buf.toString('utf8', start, nl)
      const rec = parseLine(line)
      if (rec != null && matches(rec, q)) {
        if (records.length >= q.limit || bytes + nl - start > maxBytes) return { records, offset, truncated: true }
        records.push(rec)
        bytes += nl - start
      }
      offset += nl + 1 - start
    }
    carry = buf.subarray(start)
    if (carry.length > MAX_LINE_BYTES) {
      offset += carry.length
      carry = Buffer.alloc(0)
    }
  }
  return { records, offset, truncated: false }
}
