/** Errors every protocol shares; a protocol's own failures live in its folder's errors.ts. */

/** The caller's own AbortSignal fired (distinct from a timeout). */
export class AbortError extends Error {
  override name = 'AbortError'
}

/** Turns whatever was thrown into a short, printable message. */
export function describeError (err: unknown): string {
  if (err instanceof Error) return err.message !== '' ? err.message : err.name
  return String(err)
}
