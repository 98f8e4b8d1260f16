/** The blob store could not do what it was asked (a full disk, an unreadable file, …). */
export class BlobStoreError extends Error {
  override name = 'BlobStoreError'
}

/** A blob over the store's size limit (or the caller's); nothing was stored. */
export class BlobTooLargeError extends BlobStoreError {
  override name = 'BlobTooLargeError'
  readonly limit: number
  constructor (message: string, limit: number) {
    super(message)
    this.limit = limit
  }
}

/** The store does not hold a blob it was asked to read. */
export class BlobNotFoundError extends BlobStoreError {
  override name = 'BlobNotFoundError'
  readonly hash: string
  constructor (hash: string, dir: string) {
    super(`blob ${hash} is not in ${dir}; fetch it from a peer that holds it`)
    this.hash = hash
  }
}

/** How an fs error reads in a message: its code where it has one. */
export function fsReason (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return e.code != null ? `${e.code} (${e.message})` : String(e?.message ?? err)
}

/** Out of space or over quota: the fix is the same, so is the message. */
export function isNoSpace (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOSPC' || code === 'EDQUOT'
}
