import type { Logger } from 'pino'
import { describeError } from '../../actors/runtime/errors.ts'
import type { StoredBlob } from './store.ts'

/** How long a blob nothing references any more is kept by default (zp-node --blob-retention). */
export const DEFAULT_BLOB_RETENTION_MS = 24 * 3600_000
/** How often a node collects on its own. */
export const GC_INTERVAL_MS = 5 * 60_000

/** What a reference source is asked with: a source that keeps blobs for a time (ended campaigns) needs both. */
export interface ReferenceQuery {
  now: number
  retentionMs: number
}

/**
 * Something on this node that needs blobs kept: its campaigns, the blobs it
 * offers to peers, work in progress. A model registry adds itself with
 * `BlobGc.addSource`. `why` is logged (debug) for each blob it kept.
 */
export interface ReferenceSource {
  why: string
  hashes: (q: ReferenceQuery) => AsyncIterable<string> | Iterable<string>
}

/** The part of the blob store the collector uses. */
export interface GcStore {
  list: () => AsyncIterable<StoredBlob>
  /** removes unless `unless`, asked under the blob's lock, keeps it; the size removed, undefined when nothing was */
  remove: (hash: string, opts: { unless?: (blob: StoredBlob) => boolean }) => Promise<number | undefined>
}

export interface BlobCount {
  blobs: number
  bytes: number
}

/** What one collection did (with `dryRun`, what it would have done). */
export interface GcReport {
  dryRun: boolean
  retentionMs: number
  removed: BlobCount
  kept: BlobCount
}

/** Whether time `t` is no longer ago than the retention (a time to come is too). */
export function within (t: number, now: number, retentionMs: number): boolean {
  return now - t <= retentionMs
}

/** The blobs to remove: those nothing references that were last used longer than the retention ago. */
export function collectable (blobs: Iterable<StoredBlob>, referenced: ReadonlySet<string>, now: number, retentionMs: number): string[] {
  const out: string[] = []
  for (const b of blobs) if (!referenced.has(b.hash) && !within(b.lastUsedAt, now, retentionMs)) out.push(b.hash)
  return out
}

export interface BlobGcOptions {
  store: GcStore
  retentionMs: number
  sources?: ReferenceSource[]
  log: Logger
  now?: () => number
}

const HELD = 'in use on this node right now (a submit, or a shard running here)'

/**
 * The blob store's garbage collector: removes the blobs that no reference
 * source names and that were last used longer than the retention ago. Runs
 * one at a time, every GC_INTERVAL_MS once started, and on demand.
 */
export class BlobGc {
  readonly retentionMs: number
  readonly #store: GcStore
  readonly #sources: ReferenceSource[]
  readonly #log: Logger
  readonly #now: () => number
  /** hash → holds: blobs work in progress uses, whatever the sources say */
  readonly #held = new Map<string, number>()
  readonly #lifetime = new AbortController()
  #last: Promise<unknown> = Promise.resolve()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (opts: BlobGcOptions) {
    if (!Number.isFinite(opts.retentionMs) || opts.retentionMs < 0) throw new RangeError(`blob retention must be 0 or more milliseconds, not ${opts.retentionMs}`)
    this.retentionMs = opts.retentionMs
    this.#store = opts.store
    this.#sources = [...opts.sources ?? []]
    this.#log = opts.log
    this.#now = opts.now ?? Date.now
  }

  /** Adds a reference source; the returned function takes it away again. */
  addSource (source: ReferenceSource): () => void {
    this.#sources.push(source)
    return () => {
      const i = this.#sources.indexOf(source)
      if (i >= 0) this.#sources.splice(i, 1)
    }
  }

  /** Keeps `hashes` from being removed until the returned function is called (once is enough). */
  hold (hashes: Iterable<string>): () => void {
    const held = [...hashes]
    for (const h of held) this.#held.set(h, (this.#held.get(h) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      for (const h of held) {
        const left = (this.#held.get(h) ?? 1) - 1
        if (left > 0) this.#held.set(h, left)
        else this.#held.delete(h)
      }
    }
  }

  /** Collects every GC_INTERVAL_MS until stop(); a failed run is logged and the next one tries again. */
  start (intervalMs = GC_INTERVAL_MS): void {
    if (this.#timer != null) return
    this.#timer = setInterval(() => {
      this.run().catch((err: unknown) => {
        if (!this.#lifetime.signal.aborted) this.#log.warn({ err: describeError(err) }, 'blob gc failed; it runs again later')
      })
    }, intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer and waits for a run in progress to give up. */
  async stop (): Promise<void> {
    if (this.#timer != null) clearInterval(this.#timer)
    this.#timer = undefined
    this.#lifetime.abort(new Error('node stopping'))
    await this.#last.catch(() => {})
  }

  /** One collection, after any in progress. */
  async run (opts: { dryRun?: boolean } = {}): Promise<GcReport> {
    const next = this.#last.catch(() => {}).then(async () => await this.#collect(opts.dryRun === true))
    this.#last = next
    return await next
  }

  /**
   * Removes those of `hashes` that nothing references now, however recently
   * used: what a refused submit added to the store. Returns what it freed.
   */
  async removeUnreferenced (hashes: Iterable<string>): Promise<BlobCount> {
    const wanted = [...hashes]
    const freed: BlobCount = { blobs: 0, bytes: 0 }
    if (wanted.length === 0) return freed
    const referenced = await this.#references(this.#now())
    for (const hash of wanted) {
      if (referenced.has(hash)) continue
      const bytes = await this.#store.remove(hash, { unless: () => this.#held.has(hash) })
      if (bytes != null) {
        freed.blobs++
        freed.bytes += bytes
      }
    }
    return freed
  }

  async #collect (dryRun: boolean): Promise<GcReport> {
    const signal = this.#lifetime.signal
    signal.throwIfAborted()
    const started = performance.now()
    const now = this.#now()
    // listed before the references are read: a blob put after the listing is not removed whatever they say
    const blobs: StoredBlob[] = []
    for await (const b of this.#store.list()) {
      signal.throwIfAborted()
      blobs.push(b)
    }
    const referenced = await this.#references(now)
    const doomed = new Set(collectable(blobs, new Set(referenced.keys()), now, this.retentionMs))
    const report: GcReport = { dryRun, retentionMs: this.retentionMs, removed: { blobs: 0, bytes: 0 }, kept: { blobs: 0, bytes: 0 } }
    const debug = this.#log.isLevelEnabled('debug')
    for (const b of blobs) {
      signal.throwIfAborted()
      // asked again under the blob's lock: held, put again or used since it was listed
      const bytes = !doomed.has(b.hash)
        ? undefined
        : dryRun ? b.size : await this.#store.remove(b.hash, { unless: (current) => this.#held.has(b.hash) || within(current.lastUsedAt, now, this.retentionMs) })
      const into = bytes != null ? report.removed : report.kept
      into.blobs++
      into.bytes += bytes ?? b.size
      if (debug && bytes == null) this.#log.debug({ blob: b.hash, bytes: b.size, why: referenced.get(b.hash) ?? this.#whyUnused(b, now) }, 'blob gc kept a blob')
    }
    const ms = Math.round(performance.now() - started)
    const what = `${report.removed.blobs} blob${report.removed.blobs === 1 ? '' : 's'} (${report.removed.bytes} bytes)`
    const fields = { removed: report.removed.blobs, removedBytes: report.removed.bytes, kept: report.kept.blobs, keptBytes: report.kept.bytes, retentionMs: this.retentionMs, ms }
    if (dryRun) this.#log.info(fields, `blob gc (dry run) would remove ${what}`)
    else if (report.removed.blobs > 0) this.#log.info(fields, `blob gc removed ${what}`)
    else this.#log.debug(fields, 'blob gc removed nothing')
    return report
  }

  #whyUnused (b: StoredBlob, now: number): string {
    return within(b.lastUsedAt, now, this.retentionMs)
      ? `nothing references it, but it was used ${Math.max(0, Math.round((now - b.lastUsedAt) / 1000))} s ago, within the retention (${Math.round(this.retentionMs / 1000)} s)`
      : 'used, put again or removed elsewhere since it was listed'
  }

  /** Every hash some source (or a hold) names, with the first reason found. */
  async #references (now: number): Promise<Map<string, string>> {
    const out = new Map<string, string>()
    for (const hash of this.#held.keys()) out.set(hash, HELD)
    const q = { now, retentionMs: this.retentionMs }
    for (const source of [...this.#sources]) {
      for await (const hash of source.hashes(q)) {
        if (!out.has(hash)) out.set(hash, source.why)
      }
    }
    return out
  }
}
