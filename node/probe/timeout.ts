import { errorMessage, failed, type Capabilities } from './types.ts'

export class ProbeTimeoutError extends Error {
  constructor (timeoutMs: number) {
    super(`timed out after ${timeoutMs}ms`)
    this.name = 'ProbeTimeoutError'
  }
}

/**
 * Runs `work` with a deadline. The signal handed to `work` fires on timeout, on
 * the caller's abort, and once the race is decided, so a probe that lost the race
 * (a hung command, a plugin that never resolves) is told to stop its child work.
 * The caller's abort rejects with its reason, so it is never mistaken for a
 * failed probe.
 */
export function withTimeout<T> (work: (signal: AbortSignal) => Promise<T> | T, timeoutMs: number, parent?: AbortSignal): Promise<T> {
  parent?.throwIfAborted()
  const inner = new AbortController()
  return new Promise<T>((resolve, reject) => {
    let decided = false
    const decide = (settle: () => void, reason?: unknown): void => {
      if (decided) return
      decided = true
      clearTimeout(timer)
      parent?.removeEventListener('abort', onAbort)
      inner.abort(reason)
      settle()
    }
    const onAbort = (): void => { decide(() => reject(parent?.reason), parent?.reason) }
    const timer = setTimeout(() => {
      const err = new ProbeTimeoutError(timeoutMs)
      decide(() => reject(err), err)
    }, timeoutMs)
    parent?.addEventListener('abort', onAbort, { once: true })
    Promise.resolve()
      .then(async () => await work(inner.signal))
      .then((value) => { decide(() => resolve(value)) }, (err: unknown) => { decide(() => reject(err)) })
  })
}

/**
 * A probe that fails or times out reports an `error` entry under each key it
 * would have filled, instead of throwing; only the caller's own abort propagates.
 */
export async function guardedProbe (
  failureKeys: readonly string[],
  work: (signal: AbortSignal) => Promise<Capabilities> | Capabilities,
  timeoutMs: number,
  parent?: AbortSignal
): Promise<Capabilities> {
  try {
    return await withTimeout(work, timeoutMs, parent)
  } catch (err) {
    if (parent?.aborted === true) throw parent.reason
    const entry = failed(errorMessage(err))
    return Object.fromEntries(failureKeys.map((key) => [key, entry]))
  }
}
