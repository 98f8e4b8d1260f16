import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import * as varint from 'uint8-varint'
import { Uint8ArrayList } from 'uint8arraylist'

/** longest varint length prefix we accept (enough for any frame below 2^63) */
const MAX_PREFIX_BYTES = 9

/** `varint(length) ‖ payload`: the framing of libp2p's lpStream, built as one buffer so one send writes it. */
export function frame (payload: Uint8Array): Uint8Array {
  const len = varint.encodingLength(payload.byteLength)
  const out = new Uint8Array(len + payload.byteLength)
  varint.encodeUint8Array(payload.byteLength, out, 0)
  out.set(payload, len)
  return out
}

export class FrameTooLargeError extends Error {
  override name = 'FrameTooLargeError'
  readonly size: number
  readonly limit: number
  constructor (size: number, limit: number) {
    super(`frame of ${size} bytes exceeds the ${limit}-byte limit`)
    this.size = size
    this.limit = limit
  }
}

export class BadFramingError extends Error {
  override name = 'BadFramingError'
}

export class FrameStalledError extends Error {
  override name = 'FrameStalledError'
  /** bytes of the frame that did arrive */
  readonly bytes: number
  readonly timeoutMs: number
  constructor (bytes: number, timeoutMs: number) {
    super(`a frame stalled: ${bytes} bytes of it arrived, and it was not whole ${timeoutMs} ms after its first byte`)
    this.bytes = bytes
    this.timeoutMs = timeoutMs
  }
}

/**
 * Incremental frame decoder: feed it chunks as they arrive, take whole frames
 * out. A frame announcing more than `maxFrameBytes` is refused from its prefix
 * alone, before its bytes are buffered.
 */
export class FrameDecoder {
  readonly #buf = new Uint8ArrayList()
  readonly #max: number

  constructor (maxFrameBytes: number) {
    this.#max = maxFrameBytes
  }

  /** bytes held that do not yet make a whole frame (non-zero at close = truncated) */
  get buffered (): number {
    return this.#buf.byteLength
  }

  * push (chunk: Uint8Array | Uint8ArrayList): Generator<Uint8Array> {
    this.#buf.append(chunk)
    while (this.#buf.byteLength > 0) {
      let size: number
      try {
        size = varint.decodeUint8ArrayList(this.#buf, 0)
      } catch {
        if (this.#buf.byteLength >= MAX_PREFIX_BYTES) throw new BadFramingError('invalid frame length prefix')
        return
      }
      if (size > this.#max) throw new FrameTooLargeError(size, this.#max)
      const prefix = varint.encodingLength(size)
      if (this.#buf.byteLength < prefix + size) return
      const payload = this.#buf.subarray(prefix, prefix + size)
      this.#buf.consume(prefix + size)
      yield payload
    }
  }
}

export interface FrameReaderOptions {
  maxFrameBytes: number
  /**
   * How long a frame may take to arrive once its first byte has. Time between
   * frames is not limited, nor time this side keeps the stream paused.
   */
  frameTimeoutMs: number
  /** each whole frame, in order; must not throw */
  onFrame: (payload: Uint8Array) => void
  /** the bytes cannot be framed (BadFramingError, FrameTooLargeError) or a frame stalled (FrameStalledError); nothing more is read */
  onError: (err: Error) => void
}

/**
 * Reads a stream's frames as they arrive. A peer that starts a frame and then
 * sends nothing would hold the stream, and whatever waits on it, forever: a
 * frame not whole `frameTimeoutMs` after its first byte is reported as
 * FrameStalledError. Bytes trickling in do not extend the deadline, so a
 * trickle cannot hold a stream either.
 */
export class FrameReader {
  readonly #stream: Stream
  readonly #decoder: FrameDecoder
  readonly #opts: FrameReaderOptions
  #timer: ReturnType<typeof setTimeout> | undefined
  #stopped = false

  constructor (stream: Stream, opts: FrameReaderOptions) {
    this.#stream = stream
    this.#decoder = new FrameDecoder(opts.maxFrameBytes)
    this.#opts = opts
    stream.addEventListener('message', this.#onMessage)
    // no more bytes can come: a partial frame is now truncated, not late
    stream.addEventListener('remoteCloseWrite', this.#disarm)
    stream.addEventListener('close', this.#disarm)
  }

  /** bytes of a frame begun and not yet whole (non-zero at close = truncated) */
  get buffered (): number {
    return this.#decoder.buffered
  }

  /** Resumes a stream this side paused. The frame in progress gets a fresh deadline: the pause was not the peer's doing. */
  resume (): void {
    if (this.#stream.readStatus !== 'paused') return
    this.#stream.resume()
    if (!this.#stopped && this.#decoder.buffered > 0) this.#arm()
  }

  /** Reads nothing more: bytes that still arrive are dropped (a listener stays, so they do not fill the read buffer). */
  stop (): void {
    this.#stopped = true
    this.#disarm()
  }

  readonly #onMessage = (evt: StreamMessageEvent): void => {
    if (this.#stopped) return
    let whole = 0
    try {
      for (const f of this.#decoder.push(evt.data)) {
        whole++
        this.#opts.onFrame(f)
        if (this.#stopped) return
      }
    } catch (err) {
      this.#fail(err as Error)
      return
    }
    // the deadline runs from a frame's first byte: restart it only when a new frame began
    if (this.#decoder.buffered === 0) this.#disarm()
    else if (whole > 0 || this.#timer == null) this.#arm()
  }

  #arm (): void {
    this.#disarm()
    this.#timer = setTimeout(this.#onTimeout, this.#opts.frameTimeoutMs)
    this.#timer.unref?.()
  }

  readonly #disarm = (): void => {
    if (this.#timer != null) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  readonly #onTimeout = (): void => {
    this.#timer = undefined
    // paused by this side, the rest may be waiting for window; resume() re-arms
    if (this.#stopped || this.#stream.readStatus === 'paused') return
    this.#fail(new FrameStalledError(this.#decoder.buffered, this.#opts.frameTimeoutMs))
  }

  #fail (err: Error): void {
    this.stop()
    this.#opts.onError(err)
  }
}
