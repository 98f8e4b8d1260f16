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
