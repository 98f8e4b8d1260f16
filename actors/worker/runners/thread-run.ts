import type { AbortMessage, PoolThread, RunMessage } from './thread-pool.ts'

/** Settles a run from its messages: done() once it has its result, fail() when it failed. */
export interface RunSettle<T> {
  /** the run is over; `result` may still be in the making (the module runner saves checkpoints first) */
  done: (result: T | Promise<T>) => void
  fail: (err: Error) => void
}

export interface RunHandlers<M, T> {
  /** posts the run request, tagged with `id` */
  start: (id: number) => void
  onMessage: (message: M, settle: RunSettle<T>) => void
  /** the run's failure when its thread ended under it, `description` saying why */
  ended: (description: string) => Error
  /** what a run still going is told when its thread did not stop within graceMs of an abort */
  graceExpired: string
}

let lastRunId = 0

/**
 * One run on an acquired thread. An abort is posted to the thread, which
 * stops at its next chance; a thread still busy graceMs later is terminated.
 * Once the signal has fired, the run rejects with its reason whatever the
 * thread did: the shard was not run to completion on its terms.
 */
export async function runOnThread<D, R, M extends RunMessage, T> (thread: PoolThread<D, R, M>, signal: AbortSignal, graceMs: number, handlers: RunHandlers<M, T>): Promise<T> {
  signal.throwIfAborted()
  const id = ++lastRunId
  let graceTimer: ReturnType<typeof setTimeout> | undefined
  let finished = false

  return await new Promise<T>((resolve, reject) => {
    const finish = (settle: () => void): void => {
      if (finished) return
      finished = true
      clearTimeout(graceTimer)
      signal.removeEventListener('abort', onAbort)
      thread.job = undefined
      if (signal.aborted) reject(signal.reason)
      else settle()
    }
    const onAbort = (): void => {
      const reason = signal.reason as { name?: unknown, message?: unknown } | undefined
      const message: AbortMessage = { type: 'abort', id, reason: { name: String(reason?.name ?? 'AbortError'), message: String(reason?.message ?? reason) } }
      thread.post(message)
      graceTimer = setTimeout(() => { thread.end(handlers.graceExpired) }, graceMs)
    }
    const settle: RunSettle<T> = {
      done: (result) => {
        // no more messages of this run; the thread may take the next one
        thread.job = undefined
        Promise.resolve(result).then((value) => { finish(() => { resolve(value) }) }, (err: unknown) => { finish(() => { reject(err) }) })
      },
      fail: (err) => { finish(() => { reject(err) }) }
    }
    thread.job = {
      id,
      onMessage: (message) => { handlers.onMessage(message, settle) },
      onEnd: (description) => { finish(() => { reject(handlers.ended(description)) }) }
    }
    signal.addEventListener('abort', onAbort, { once: true })
    handlers.start(id)
  })
}
