/**
 * Timeouts composed with a caller's signal. Built on setTimeout (not
 * AbortSignal.timeout) so the timer is cleared as soon as the work is done and
 * fake timers in tests control it.
 */
export interface Deadline {
  signal: AbortSignal
  /** stop the timer; call when the guarded work has settled */
  clear: () => void
}

export function deadline (timeoutMs: number | undefined, parent?: AbortSignal): Deadline {
  const controller = new AbortController()
  let timer: ReturnType<typeof setTimeout> | undefined
  const onParentAbort = (): void => controller.abort(parent?.reason)
  if (parent?.aborted === true) {
    controller.abort(parent.reason)
  } else {
    parent?.addEventListener('abort', onParentAbort, { once: true })
    if (timeoutMs != null && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => controller.abort(timeoutError(timeoutMs)), Math.max(0, timeoutMs))
      timer.unref?.()
    }
  }
  return {
    signal: controller.signal,
    clear: () => {
      if (timer != null) clearTimeout(timer)
      parent?.removeEventListener('abort', onParentAbort)
    }
  }
}

export function timeoutError (ms: number): Error {
  return new DOMException(`timed out after ${ms} ms`, 'TimeoutError')
}

export function isTimeout (reason: unknown): boolean {
  return reason instanceof Error && reason.name === 'TimeoutError'
}

/** Settles with `promise`, or rejects with the signal's reason once it aborts. */
export async function raceSignal<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return await promise
  if (signal.aborted) throw signal.reason
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(signal.reason)
        signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    if (onAbort != null) signal.removeEventListener('abort', onAbort)
  }
}

/** A sleep that ends early (rejecting) when the signal aborts. */
export async function delay (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) throw signal.reason
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
