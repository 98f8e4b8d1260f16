import type { BlobErrorStatus } from './schema.ts'

/**
 * Why a fetch failed: the server's refusal (`BlobErrorStatus`), or what the
 * client found wrong with the answer or the connection.
 */
export type BlobFetchFailure =
  | BlobErrorStatus
  /** the peer could not be reached, or the connection was lost mid-transfer */
  | 'unreachable'
  /** the answer did not follow the protocol */
  | 'protocol'
  /** the announced size differs from the size the caller expected */
  | 'size_mismatch'
  /** the server closed before sending every announced byte */
  | 'short_body'
  /** the server sent more bytes than it announced */
  | 'long_body'
  /** the bytes received do not hash to the hash asked for */
  | 'hash_mismatch'
  /** no bytes arrived for STALL_TIMEOUT_MS */
  | 'stalled'

/** A blob could not be fetched from a peer; nothing was stored. */
export class BlobFetchError extends Error {
  override name = 'BlobFetchError'
  readonly peer: string
  readonly hash: string
  readonly reason: BlobFetchFailure

  constructor (init: { peer: string, hash: string, reason: BlobFetchFailure, message: string, cause?: unknown }) {
    super(`cannot fetch blob ${init.hash} from peer ${init.peer}: ${init.message}`, { cause: init.cause })
    this.peer = init.peer
    this.hash = init.hash
    this.reason = init.reason
  }
}
