/**
 * What the blob protocol needs from local storage (node/blobs/store.ts
 * implements both sides); kept as interfaces so the protocol knows nothing of
 * where or how blobs are kept.
 */

/** The server side: reads blobs by hash. */
export interface BlobSource {
  /**
   * Opens a blob for reading; undefined when this node does not hold it. The
   * open reader keeps serving the bytes it was opened on even if the blob is
   * removed meanwhile.
   */
  openReader: (hash: string) => Promise<BlobReader | undefined>
}

export interface BlobReader {
  readonly size: number
  /** bytes [start, end) in pieces of at most `chunkBytes`, each a fresh buffer the caller may keep */
  chunks: (start: number, end: number, chunkBytes: number) => AsyncIterable<Uint8Array>
  close: () => Promise<void>
}

/** The client side: where fetched blobs go. */
export interface BlobSink {
  has: (hash: string) => Promise<boolean>
  /** where the blob with this hash is, or will be, kept */
  path: (hash: string) => string
  /** a temp file that becomes a blob only when committed; `name` is for messages */
  createWriter: (opts: { name: string, maxBytes: number }) => Promise<BlobWriter>
}

export interface BlobWriter {
  /** bytes written so far */
  readonly bytes: number
  write: (chunks: readonly Uint8Array[]) => Promise<void>
  /** flushes the bytes to disk and closes the temp file; resolves with the sha256 (hex) of everything written */
  finish: () => Promise<string>
  /** puts the finished bytes in place under their hash; resolves with that path */
  commit: () => Promise<string>
  /** removes the temp file; safe at any point, and more than once */
  discard: () => Promise<void>
}
