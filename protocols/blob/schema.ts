import { z } from 'zod'
import { SHA256_HEX } from '../campaign/spec.ts'

/**
 * `/zp/blob/1.0.0`, one request per stream:
 *
 *   client → server   frame(msgpack BlobRequest), then the client closes its write side
 *   server → client   frame(msgpack BlobResponse header)
 *                     ok: exactly `size` raw bytes, sent in pieces of at most
 *                     BLOB_CHUNK_BYTES, then the server closes its write side
 *
 * The body is not framed: the header announces its length, so a short body
 * (the server closed early) or a long one is detected by counting, and frames
 * would only add a copy of every byte on the receiving side. A server that
 * fails mid-body resets the stream.
 */

/** Only the version is read first, so a newer request is refused by version, not by shape. */
export const VersionProbeSchema = z.object({ v: z.number() })

const Offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)

export const BlobRequestSchema = z.object({
  v: z.number().int(),
  hash: z.string().regex(SHA256_HEX, { message: 'expected a sha256 hex digest (64 lower-case hex digits)' }),
  /** the byte range [start, end) of the blob; the whole blob when both are absent */
  start: Offset.optional(),
  end: Offset.optional(),
  /** the most body bytes the client will accept: a larger answer is refused as too_large before any byte is sent */
  max: Offset.optional()
})
export type BlobRequest = z.infer<typeof BlobRequestSchema>

export const BLOB_ERROR_STATUSES = ['not_found', 'not_authorized', 'invalid', 'too_large', 'unsupported_version', 'unavailable'] as const
export type BlobErrorStatus = typeof BLOB_ERROR_STATUSES[number]

export const BlobResponseSchema = z.discriminatedUnion('status', [
  z.object({ v: z.number().int(), status: z.literal('ok'), size: Offset }),
  z.object({ v: z.number().int(), status: z.enum(BLOB_ERROR_STATUSES), message: z.string().max(2048) })
])
export type BlobResponse = z.infer<typeof BlobResponseSchema>
