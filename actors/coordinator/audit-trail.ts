import { createHash, type Hash } from 'node:crypto'
import type { AuditEvent, AuditLog } from './audit.ts'
import { formatRanges } from './ranges.ts'

interface PendingResults {
  shards: number[]
  rows: number
  digest: Hash
}

/**
 * A campaign's audit log as the coordinator writes it: results are gathered
 * per worker and written as one record per flush (the coordinator's tick),
 * carrying the shards as ranges, the row count and a digest of the rows, so
 * the log grows by a few bytes a shard instead of a record each. Any other
 * event first writes what is gathered, so the order of the log stays the
 * order things happened.
 */
export class AuditTrail {
  readonly #log: AuditLog
  readonly #results = new Map<string, PendingResults>()

  constructor (log: AuditLog) {
    this.#log = log
  }

  get file (): string {
    return this.#log.file
  }

  /** hash of the last record written (results still gathered are not in it: `flush` first where that matters) */
  get head (): string {
    return this.#log.head
  }

  append (event: AuditEvent): void {
    this.flush()
    this.#log.append(event)
  }

  leased (worker: string, leases: ReadonlyArray<{ index: number, epoch: number }>): void {
    this.append({ type: 'leased', worker, shards: formatRanges(leases.map(l => l.index)), epochs: formatRanges(leases.map(l => l.epoch)) })
  }

  result (worker: string, index: number, rows: readonly unknown[]): void {
    let pending = this.#results.get(worker)
    if (pending == null) {
      pending = { shards: [], rows: 0, digest: createHash('sha256') }
      this.#results.set(worker, pending)
    }
    pending.shards.push(index)
    pending.rows += rows.length
    pending.digest.update(`${index}:${JSON.stringify(rows)}\n`)
  }

  /** Writes the gathered results. */
  flush (): void {
    if (this.#results.size === 0) return
    const batches = [...this.#results]
    this.#results.clear()
    for (const [worker, p] of batches) {
      this.#log.append({ type: 'results', worker, shards: formatRanges(p.shards), count: p.shards.length, rows: p.rows, digest: p.digest.digest('hex') })
    }
  }

  async close (): Promise<void> {
    this.flush()
    await this.#log.flush().catch(() => {})
    await this.#log.close()
  }

  async flushed (): Promise<void> {
    this.flush()
    await this.#log.flush()
  }
}
