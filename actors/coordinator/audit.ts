import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { mkdir, open, readFile, truncate } from 'node:fs/promises'
import { dirname } from 'node:path'
import { createInterface } from 'node:readline'

/** The `prev` of the first record. */
export const GENESIS = '0'.repeat(64)

export interface AuditEvent {
  type: 'submitted' | 'leased' | 'results' | 'duplicate' | 'failed' | 'dead-lettered' | 'requeued' | 'cancelled' | 'resumed' | 'finished' | 'takeover' | 'superseded' | 'replicas' | 'stopped' | 'gap'
  [field: string]: unknown
}

function digest (record: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(record)).digest('hex')
}

/**
 * `runs/<id>/audit.jsonl`: one JSON record a line, each carrying the hash of
 * the line before (`prev`) and its own (`hash`, over everything else in it).
 * Changing a line breaks its hash, removing one breaks the next line's `prev`,
 * and the head kept in the campaign record catches a removed tail.
 */
export class AuditLog {
  readonly file: string
  #out: WriteStream
  #seq: number
  #head: string
  /** the last record known to be in the file */
  #written: { seq: number, hash: string }
  /** records lost to failed writes (a full disk) since the last one written */
  #lost = 0
  readonly #onError: (err: Error) => void

  private constructor (file: string, seq: number, head: string, onError: (err: Error) => void) {
    this.file = file
    this.#seq = seq
    this.#head = head
    this.#written = { seq, hash: head }
    this.#onError = onError
    this.#out = this.#stream()
  }

  /**
   * Opens the log to append, continuing an existing chain (a resumed
   * campaign). A failed write does not stop the campaign: the chain goes back
   * to the last record in the file, and a `gap` record says how many were lost.
   */
  static async open (file: string, onError: (err: Error) => void = () => {}): Promise<AuditLog> {
    await mkdir(dirname(file), { recursive: true })
    const last = await lastRecord(file)
    return new AuditLog(file, last?.seq ?? 0, last?.hash ?? GENESIS, onError)
  }

  #stream (): WriteStream {
    const out = createWriteStream(this.file, { flags: 'a', mode: 0o644 })
    out.on('error', (err) => {
      if (out !== this.#out) return
      this.#onError(err)
      this.#seq = this.#written.seq
      this.#head = this.#written.hash
      this.#out = this.#stream()
    })
    return out
  }

  /** hash of the last record appended */
  get head (): string {
    return this.#head
  }

  append (event: AuditEvent): void {
    if (this.#lost > 0 && event.type !== 'gap') {
      const lost = this.#lost
      this.#lost = 0
      this.append({ type: 'gap', lost, reason: 'records could not be written (is the disk full?)' })
    }
    const seq = this.#seq + 1
    const body = { seq, t: new Date().toISOString(), ...event, prev: this.#head }
    const hash = digest(body)
    this.#seq = seq
    this.#head = hash
    const out = this.#out
    out.write(JSON.stringify({ ...body, hash }) + '\n', (err) => {
      if (err != null) {
        if (event.type !== 'gap') this.#lost++
      } else if (out === this.#out && seq > this.#written.seq) {
        this.#written = { seq, hash }
      }
    })
  }

  /** Resolves once everything appended has reached the file. */
  async flush (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#out.write('', (err) => { if (err != null) reject(err); else resolve() })
    })
  }

  async close (): Promise<void> {
    await new Promise<void>(resolve => this.#out.end(resolve))
  }
}

/**
 * The last whole record of a log. A line cut short by a crash is dropped from
 * the file first, so the chain continues from the last record that was written.
 */
async function lastRecord (file: string): Promise<{ seq: number, hash: string } | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  const end = text.endsWith('\n') ? text.length : text.lastIndexOf('\n') + 1
  if (end !== text.length) await truncate(file, Buffer.byteLength(text.slice(0, end)))
  const lines = text.slice(0, end).split('\n').filter(l => l !== '')
  const last = lines.at(-1)
  if (last == null) return undefined
  const rec = JSON.parse(last) as { seq: number, hash: string }
  return { seq: rec.seq, hash: rec.hash }
}

export interface AuditVerdict {
  ok: boolean
  records: number
  head: string
  /** the first problem: its line number (1-based) and what is wrong */
  problem?: { line: number, reason: string }
}

/**
 * Walks the chain. `expectedHead` (from the campaign record) must be one of its
 * records, which catches a removed tail; records may follow it (a late
 * duplicate after the end, say).
 */
export async function verifyAudit (file: string, expectedHead?: string): Promise<AuditVerdict> {
  let prev = GENESIS
  let line = 0
  let headSeen = expectedHead == null
  const fail = (reason: string): AuditVerdict => ({ ok: false, records: line - 1, head: prev, problem: { line, reason } })
  try {
    await (await open(file)).close()
  } catch {
    return { ok: false, records: 0, head: GENESIS, problem: { line: 0, reason: `no audit log at ${file}` } }
  }
  for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    line++
    let rec: Record<string, unknown>
    try {
      rec = JSON.parse(text) as Record<string, unknown>
    } catch {
      return fail('not a JSON record')
    }
    const { hash, ...body } = rec
    if (body.seq !== line) return fail(`sequence number ${String(body.seq)} where ${line} was expected: a record was removed or moved`)
    if (body.prev !== prev) return fail('its prev does not match the hash of the record before: a record before it was changed or removed')
    if (digest(body) !== hash) return fail('its hash does not match its contents: the record was changed')
    prev = hash as string
    if (prev === expectedHead) headSeen = true
  }
  if (!headSeen) {
    return { ok: false, records: line, head: prev, problem: { line: line + 1, reason: 'the log ends before the last record the coordinator wrote: records were removed from the end' } }
  }
  return { ok: true, records: line, head: prev }
}
