import type { Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { describeError } from '../../actors/runtime/errors.ts'
import { fetchBlob, storedHash, type BlobTarget } from '../../protocols/blob/client.ts'
import { BLOB_MAX_STREAMS, BLOB_PROTOCOL, DIAL_TIMEOUT_MS } from '../../protocols/blob/constants.ts'
import { handleBlobStream } from '../../protocols/blob/handler.ts'
import { deadline, raceSignal } from '../../protocols/common/signals.ts'
import type { BlobAccess } from './access.ts'
import { BlobTooLargeError } from './errors.ts'
import type { BlobStore } from './store.ts'

/** The part of libp2p the blob service uses. */
export type BlobLibp2p = Pick<Libp2p, 'handle' | 'unhandle' | 'dialProtocol'>

export interface BlobServiceOptions {
  libp2p: BlobLibp2p
  store: BlobStore
  /** who may fetch what from this node */
  access: Pick<BlobAccess, 'allows'>
  log: Logger
  /** hears how long each transfer took and its bytes (undefined when it failed) */
  metrics?: BlobMetrics
}

export interface BlobMetrics {
  fetched: (seconds: number, bytes: number | undefined) => void
}

export interface BlobFetchOptions {
  /** gives up (rejecting with its reason); a transfer others wait for goes on without this caller */
  signal?: AbortSignal
  /** refuse larger blobs; default and ceiling: the store's maxBlobBytes */
  maxBytes?: number
}

interface SharedFetch {
  promise: Promise<string>
  controller: AbortController
  /** callers that may still abandon it; the transfer stops when the last one does */
  waiters: number
  maxBytes: number
}

/**
 * A node's side of `/zp/blob/1.0.0`: serves its store to the peers `access`
 * allows, and fetches blobs from peers into it. Concurrent fetches of one hash
 * share a transfer. A range whose whole blob is already here is cut locally.
 */
export class BlobService {
  readonly store: BlobStore
  readonly access: Pick<BlobAccess, 'allows'>
  readonly #libp2p: BlobLibp2p
  readonly #log: Logger
  readonly #metrics: BlobMetrics | undefined
  readonly #lifetime = new AbortController()
  readonly #inflight = new Map<string, SharedFetch>()

  constructor (opts: BlobServiceOptions) {
    this.store = opts.store
    this.access = opts.access
    this.#libp2p = opts.libp2p
    this.#log = opts.log
    this.#metrics = opts.metrics
  }

  /** Registers the protocol handler; call before libp2p starts or at any time after. */
  async start (): Promise<void> {
    await this.#libp2p.handle(BLOB_PROTOCOL, async (stream, connection) => {
      await handleBlobStream(stream, connection.remotePeer.toString(), {
        source: this.store,
        authorize: (peer, hash) => this.access.allows(peer, hash),
        log: this.#log,
        signal: this.#lifetime.signal
      })
    }, { maxInboundStreams: BLOB_MAX_STREAMS, maxOutboundStreams: BLOB_MAX_STREAMS })
  }

  /** Cuts transfers in progress, both ways, and stops serving. */
  async stop (): Promise<void> {
    this.#lifetime.abort(new Error('node stopping'))
    await this.#libp2p.unhandle(BLOB_PROTOCOL).catch(() => {})
  }

  /**
   * The local path of a blob (or of a range of one, stored as its own blob),
   * fetched from `peer` unless already here, hash-checked. Throws
   * BlobFetchError (with `reason`), BlobStoreError (a full disk), or the
   * signal's reason.
   */
  async fetch (peer: string, target: BlobTarget, opts: BlobFetchOptions = {}): Promise<string> {
    const want = storedHash(target)
    if (await this.store.has(want)) return this.store.path(want)
    const maxBytes = Math.min(opts.maxBytes ?? this.store.maxBlobBytes, this.store.maxBlobBytes)
    let shared = this.#inflight.get(want)
    if (shared == null) {
      const controller = new AbortController()
      const entry: SharedFetch = {
        promise: this.#transfer(peer, target, maxBytes, AbortSignal.any([controller.signal, this.#lifetime.signal])).finally(() => {
          if (this.#inflight.get(want) === entry) this.#inflight.delete(want)
        }),
        controller,
        waiters: 0,
        maxBytes
      }
      // each waiter sees the outcome; this keeps one nobody waits for any more from being unhandled
      entry.promise.catch(() => {})
      this.#inflight.set(want, entry)
      shared = entry
    }
    shared.waiters++
    try {
      const path = await raceSignal(shared.promise, opts.signal)
      if (maxBytes < shared.maxBytes) {
        const size = await this.store.size(want) ?? 0
        if (size > maxBytes) throw new BlobTooLargeError(`blob ${want} is ${size} bytes, over the ${maxBytes}-byte limit of this fetch`, maxBytes)
      }
      return path
    } catch (err) {
      if (opts.signal?.aborted === true && err === opts.signal.reason && --shared.waiters === 0) {
        // nobody wants it any more: stop it, and let the next caller start afresh
        if (this.#inflight.get(want) === shared) this.#inflight.delete(want)
        shared.controller.abort(err)
      }
      throw err
    }
  }

  async #transfer (peer: string, target: BlobTarget, maxBytes: number, signal: AbortSignal): Promise<string> {
    const want = storedHash(target)
    const started = performance.now()
    try {
      let path: string
      if (target.range != null && await this.store.has(target.hash)) {
        const bytes = target.range.end - target.range.start
        if (bytes > maxBytes) throw new BlobTooLargeError(`range [${target.range.start}, ${target.range.end}) of blob ${target.hash} is ${bytes} bytes, over the ${maxBytes}-byte limit`, maxBytes)
        const ref = await this.store.putSlice(target.hash, target.range, target.name ?? want)
        path = this.store.path(ref.hash)
      } else {
        path = await fetchBlob(async (s) => await this.#dial(peer, s), { ...target, peer, maxBytes, signal }, this.store)
      }
      this.#log.debug({ peer, hash: want, ms: Math.round(performance.now() - started) }, 'fetched a blob')
      if (this.#metrics != null) this.#metrics.fetched((performance.now() - started) / 1000, await this.store.size(want) ?? 0)
      return path
    } catch (err) {
      this.#log.debug({ peer, hash: want, err: describeError(err) }, 'blob fetch failed')
      this.#metrics?.fetched((performance.now() - started) / 1000, undefined)
      throw err
    }
  }

  async #dial (peer: string, signal: AbortSignal): Promise<Stream> {
    const d = deadline(DIAL_TIMEOUT_MS, signal)
    try {
      return await this.#libp2p.dialProtocol(peerIdFromString(peer), BLOB_PROTOCOL, { signal: d.signal, maxOutboundStreams: BLOB_MAX_STREAMS })
    } finally {
      d.clear()
    }
  }
}
