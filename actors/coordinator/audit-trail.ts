import type { AuditEvent, AuditLog } from './audit.ts'
import { formatRanges } from './ranges.ts'

interface Gathered {
  /** epoch ms of the first and the last event gathered */
  at: number
  last: number
  shards: number[]
}

interface GatheredLeases extends Gathered {
  epochs: number[]
}

interface GatheredResults extends Gathered {
  rows: number
}

/**
 * A campaign's audit log as the coordinator writes it. Leases and results,
 * one or more per shard, are gathered per worker and written as one record
 * each per flush (the coordinator's tick), carrying the shards (and epochs)
 * as ranges, the times of the first and last (`at`, `last`), and for results the row count:
 * the log grows by a few bytes a shard, not a record. (The rows themselves are in
 * the campaign store; hashing them here would cost more than storing them.)
 * Any other event first writes what is gathered, so the log's order stays
 * the order things happened in, to within a tick.
 */
export class AuditTrail {
  readonly #log: AuditLog
  readonly #now: () => number
  readonly #leases = new Map<string, GatheredLeases>()
  readonly #results = new Map<string, GatheredResults>()

  constructor (log: AuditLog, now: () => number = Date.now) {
    this.#log = log
    this.#now = now
  }

  get file (): string {
    return this.#log.file
  }

  /** hash of the last record written (what is still gathered is not in it: `flush` first where that matters) */
  get head (): string {
    return this.#log.head
  }

  append (event: AuditEvent): void {
    this.flush()
    this.#log.append(event)
  }

  leased (worker: string, leases: ReadonlyArray<{ index: number, epoch: number }>): void {
    let g = this.#leases.get(worker)
    if (g == null) {
      g = { at: this.#now(), last: 0, shards: [], epochs: [] }
      this.#leases.set(worker, g)
    }
    g.last = this.#now()
    for (const l of leases) {
      g.shards.push(l.index)
      g.epochs.push(l.epoch)
    }
  }

  result (worker: string, index: number, rows: readonly unknown[]): void {
    let g = this.#results.get(worker)
    if (g == null) {
      g = { at: this.#now(), last: 0, shards: [], rows: 0 }
      this.#results.set(worker, g)
    }
    g.last = this.#now()
    g.shards.push(index)
    g.rows += rows.length
  }

  /** Writes what is gathered: leases before results. */
  flush (): void {
    if (this.#leases.size > 0) {
      const leases = [...this.#leases]
      this.#leases.clear()
      for (const [worker, g] of leases) {
        this.#log.append({ type: 'leased', at: g.at, last: g.last, worker, shards: formatRanges(g.shards), epochs: formatRanges(g.epochs) })
      }
    }
    if (this.#results.size > 0) {
      const results = [...this.#results]
      this.#results.clear()
      for (const [worker, g] of results) {
        this.#log.append({ type: 'results', at: g.at, last: g.last, worker, shards: formatRanges(g.shards), count: g.shards.length, rows: g.rows })
      }
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
