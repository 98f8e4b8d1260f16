import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'
import { SHA256_HEX } from '../campaign/spec.ts'
import { decodeAs, encode } from '../common/codec.ts'
import { describeError } from '../common/errors.ts'
import { frame } from '../common/framing.ts'
import { raceSignal } from '../common/signals.ts'
import { BLOB_PROTOCOL, BLOB_WIRE_VERSION, CLIENT_HIGH_WATER_BYTES, MAX_CONTROL_FRAME_BYTES, STALL_TIMEOUT_MS } from './constants.ts'
import { BlobFetchError, type BlobFetchFailure } from './errors.ts'
import { pauseAfterDelivery } from '../common/pause.ts'
import { BlobResponseSchema, type BlobRequest } from './schema.ts'
import type { BlobSink, BlobWriter } from './types.ts'

/** Opens a `/zp/blob/1.0.0` stream to the peer (libp2p's dialProtocol in a node). */
export type OpenBlobStream = (signal: AbortSignal) => Promise<Stream>

/** What to fetch: a whole blob, or a byte range of it that is a blob of its own. */
export interface BlobTarget {
  hash: string
  /** the whole blob's size, when known: a different announced size is refused */
  size?: number
  /** bytes [start, end) of blob `hash`, whose sha256 is `range.hash`; stored as the blob `range.hash` */
  range?: { start: number, end: number, hash: string }
  /** for messages: the file it came from */
  name?: string
}

export interface FetchBlobOptions extends BlobTarget {
  /** the peer asked, for messages */
  peer: string
  /** refuse (from the header, before any byte is read) anything larger */
  maxBytes: number
  signal?: AbortSignal
}

/** The hash a target is stored under: the slice's for a range, else the blob's. */
export function storedHash (target: BlobTarget): string {
  return target.range?.hash ?? target.hash
}

/**
 * Fetches one blob (or range) from a peer into `sink` and returns its local
 * path. Already present: no network. Otherwise the bytes go to a temp file
 * while being hashed, and become a blob only if the hash (and the size) is
 * right; any failure leaves nothing behind and throws BlobFetchError (a full
 * disk: the sink's own error). Aborting `signal` cuts the transfer and
 * rejects with its reason.
 */
export async function fetchBlob (open: OpenBlobStream, opts: FetchBlobOptions, sink: BlobSink): Promise<string> {
  checkTarget(opts)
  const want = storedHash(opts)
  if (await sink.has(want)) return sink.path(want)
  const fail = (reason: BlobFetchFailure, message: string, cause?: unknown): BlobFetchError =>
    new BlobFetchError({ peer: opts.peer, hash: want, reason, message, cause })
  const expected = opts.range != null ? opts.range.end - opts.range.start : opts.size
  if (expected != null && expected > opts.maxBytes) {
    throw fail('too_large', `it is ${expected} bytes, over this node's limit of ${opts.maxBytes}; raise the limit (maxBlobBytes) or use a smaller blob`)
  }
  const signal = opts.signal ?? new AbortController().signal
  signal.throwIfAborted()

  let stream: Stream
  try {
    stream = await open(signal)
  } catch (err) {
    if (signal.aborted && err === signal.reason) throw err
    if ((err as Error).name === 'UnsupportedProtocolError') {
      throw fail('unsupported_version', `the peer does not speak ${BLOB_PROTOCOL}; it may run an incompatible zp-mesh version`, err)
    }
    throw fail('unreachable', describeError(err), err)
  }

  const transfer = new Transfer(stream, sink, { name: opts.name ?? want, expected, maxBytes: opts.maxBytes, fail })
  const onAbort = (): void => { transfer.fail(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    const request: BlobRequest = {
      v: BLOB_WIRE_VERSION,
      hash: opts.hash,
      ...(opts.range != null ? { start: opts.range.start, end: opts.range.end } : {}),
      max: opts.maxBytes
    }
    try {
      stream.send(frame(encode(request)))
      // half-close: the request is all the server gets; its answer still flows back
      await raceSignal(stream.close({ signal }), signal)
    } catch (err) {
      // kept only if the transfer has no better account of what went wrong (a refusal, an abort)
      transfer.fail(fail('unreachable', `could not send the request: ${describeError(err)}`, err))
    }
    const writer = await transfer.done
    const actual = await writer.finish()
    if (actual !== want) {
      throw fail('hash_mismatch', `the ${writer.bytes} bytes received hash to ${actual}: the peer's copy is corrupt or is not this blob; nothing was stored`)
    }
    return await writer.commit()
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(describeError(err)))
    if (signal.aborted) throw signal.reason
    throw err
  } finally {
    signal.removeEventListener('abort', onAbort)
    await transfer.settle()
  }
}

function checkTarget (t: BlobTarget): void {
  if (!SHA256_HEX.test(t.hash)) throw new RangeError(`blob hash '${t.hash}' is not a sha256 hex digest (64 lower-case hex digits)`)
  if (t.range != null) {
    const { start, end, hash } = t.range
    if (!SHA256_HEX.test(hash)) throw new RangeError(`range hash '${hash}' is not a sha256 hex digest (64 lower-case hex digits)`)
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
      throw new RangeError(`byte range [${start}, ${end}) of blob ${t.hash} is not a valid range`)
    }
  }
}

interface TransferOptions {
  name: string
  /** the body size the caller expects, if it knows */
  expected: number | undefined
  maxBytes: number
  fail: (reason: BlobFetchFailure, message: string, cause?: unknown) => BlobFetchError
}

/**
 * The receiving half of one fetch: parses the header, then queues body bytes
 * for a single writer, pausing the stream while more than
 * CLIENT_HIGH_WATER_BYTES wait for the disk. `done` resolves with the writer
 * once exactly the announced bytes were written.
 */
class Transfer {
  readonly #stream: Stream
  readonly #sink: BlobSink
  readonly #opts: TransferOptions
  readonly #done = Promise.withResolvers<BlobWriter>()
  readonly #head = new Uint8ArrayList()
  #size: number | undefined
  #writer: BlobWriter | undefined
  readonly #queue: Uint8Array[] = []
  #queued = 0
  #received = 0
  #ended = false
  #paused = false
  #failed = false
  #pumping: Promise<void> | undefined
  #lastProgress = performance.now()
  readonly #watchdog: ReturnType<typeof setInterval>

  constructor (stream: Stream, sink: BlobSink, opts: TransferOptions) {
    this.#stream = stream
    this.#sink = sink
    this.#opts = opts
    // a rejection nobody awaits yet (the request is still being sent) must not crash the process
    this.#done.promise.catch(() => {})
    stream.addEventListener('message', this.#onMessage)
    stream.addEventListener('end', this.#onEnd)
    stream.addEventListener('close', this.#onClose)
    this.#watchdog = setInterval(() => {
      if (!this.#paused && performance.now() - this.#lastProgress > STALL_TIMEOUT_MS) {
        this.fail(opts.fail('stalled', `no bytes arrived for ${STALL_TIMEOUT_MS / 1000} s (${this.#received} of ${this.#size ?? '?'} received)`))
      }
    }, STALL_TIMEOUT_MS / 4)
    this.#watchdog.unref()
  }

  get done (): Promise<BlobWriter> {
    return this.#done.promise
  }

  /** Ends the transfer with `err`; the stream is reset, so the server stops sending at once. */
  fail (err: unknown): void {
    if (this.#failed) return
    this.#failed = true
    this.#queue.length = 0
    this.#done.reject(err)
    this.#stream.abort(err instanceof Error ? err : new Error(describeError(err)))
  }

  /** Stops listening and, unless the blob was committed, removes the temp file. */
  async settle (): Promise<void> {
    clearInterval(this.#watchdog)
    this.#stream.removeEventListener('message', this.#onMessage)
    this.#stream.removeEventListener('end', this.#onEnd)
    this.#stream.removeEventListener('close', this.#onClose)
    this.fail(new Error('transfer over'))
    await this.#pumping
    await this.#writer?.discard()
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    if (this.#failed) return
    this.#lastProgress = performance.now()
    if (this.#size == null) {
      this.#head.append(evt.data)
      const body = this.#readHeader()
      if (body != null) this.#body(body)
    } else {
      this.#body(evt.data)
    }
  }

  /** The bytes after the header once it is whole; undefined while it is not. */
  #readHeader (): Uint8ArrayList | undefined {
    const { fail, expected, maxBytes } = this.#opts
    let length: number
    try {
      length = varint.decodeUint8ArrayList(this.#head, 0)
    } catch {
      if (this.#head.byteLength >= 9) this.fail(fail('protocol', 'the answer does not start with a valid frame length'))
      return undefined
    }
    if (length > MAX_CONTROL_FRAME_BYTES) {
      this.fail(fail('protocol', `the answer's header frame announces ${length} bytes, over the ${MAX_CONTROL_FRAME_BYTES}-byte limit`))
      return undefined
    }
    const prefix = varint.encodingLength(length)
    if (this.#head.byteLength < prefix + length) return undefined
    let header
    try {
      header = decodeAs(BlobResponseSchema, this.#head.subarray(prefix, prefix + length), 'blob response header')
    } catch (err) {
      this.fail(fail('protocol', describeError(err), err))
      return undefined
    }
    if (header.v !== BLOB_WIRE_VERSION) {
      this.fail(fail('unsupported_version', `the peer answered with blob header v${header.v}, this node speaks v${BLOB_WIRE_VERSION}; upgrade the older node`))
      return undefined
    }
    if (header.status !== 'ok') {
      this.fail(fail(header.status, `the peer answered ${header.status}: ${header.message}`))
      return undefined
    }
    if (expected != null && header.size !== expected) {
      this.fail(fail('size_mismatch', `the peer announced ${header.size} bytes, ${expected} were expected`))
      return undefined
    }
    if (header.size > maxBytes) {
      this.fail(fail('too_large', `the peer announced ${header.size} bytes, over this node's limit of ${maxBytes}; raise the limit (maxBlobBytes) or use a smaller blob`))
      return undefined
    }
    this.#size = header.size
    return this.#head.sublist(prefix + length)
  }

  #body (data: Uint8Array | Uint8ArrayList): void {
    const bufs = data instanceof Uint8Array ? [data] : [...data]
    for (const buf of bufs) {
      if (buf.byteLength === 0) continue
      this.#queue.push(buf)
      this.#queued += buf.byteLength
      this.#received += buf.byteLength
    }
    if (this.#received > this.#size!) {
      this.fail(this.#opts.fail('long_body', `the peer sent more than the ${this.#size} bytes it announced`))
      return
    }
    if (!this.#paused && this.#queued >= CLIENT_HIGH_WATER_BYTES) {
      this.#paused = true
      pauseAfterDelivery(this.#stream, () => this.#paused)
    }
    this.#pump()
  }

  #pump (): void {
    this.#pumping ??= this.#drain().finally(() => {
      this.#pumping = undefined
      this.#maybeDone()
    })
  }

  async #drain (): Promise<void> {
    try {
      this.#writer ??= await this.#sink.createWriter({ name: this.#opts.name, maxBytes: this.#opts.maxBytes })
      while (this.#queue.length > 0 && !this.#failed) {
        const batch = this.#queue.splice(0)
        for (const buf of batch) this.#queued -= buf.byteLength
        await this.#writer.write(batch)
        if (this.#paused && this.#queued < CLIENT_HIGH_WATER_BYTES / 2) {
          this.#paused = false
          this.#lastProgress = performance.now()
          // the stream may have closed meanwhile; what it still buffers is delivered on resume
          if (this.#stream.readStatus === 'paused') this.#stream.resume()
        }
      }
    } catch (err) {
      this.fail(err)
    }
  }

  /** The announced bytes are all on disk: hand over the writer. */
  #maybeDone (): void {
    if (this.#failed || !this.#ended || this.#pumping != null || this.#queue.length > 0) return
    if (this.#size == null) {
      this.fail(this.#opts.fail('protocol', 'the peer closed the stream without answering'))
    } else if (this.#received < this.#size) {
      this.fail(this.#opts.fail('short_body', `the peer closed the stream after ${this.#received} of the ${this.#size} bytes it announced`))
    } else if (this.#writer == null) {
      // an empty blob: nothing was queued, so no writer was made yet
      this.#pump()
    } else {
      this.#done.resolve(this.#writer)
    }
  }

  readonly #onEnd = (): void => {
    // 'end' also fires on a reset or an abort, just before 'close' reports the error
    if (this.#stream.status === 'reset' || this.#stream.status === 'aborted') return
    this.#ended = true
    this.#maybeDone()
  }

  readonly #onClose = (evt: StreamCloseEvent): void => {
    if (evt.error != null) this.fail(this.#opts.fail('unreachable', `the stream was cut after ${this.#received} bytes: ${describeError(evt.error)}`, evt.error))
  }
}
