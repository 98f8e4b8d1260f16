import { UnavailableError } from '../runtime/errors.ts'

/**
 * Quorums for `m` replicas (the coordinator is not counted): a takeover needs
 * the votes of `elect` replicas, and the coordinator may lease work (and
 * counts a change as durable) while `lead` replicas confirm it. elect + lead >
 * m, so no replica can be elected while the coordinator still leads, and
 * 2·elect > m, so two candidates cannot both win a term.
 */
export function quorums (m: number): { elect: number, lead: number } {
  const elect = Math.floor(m / 2) + 1
  return { elect, lead: m === 0 ? 0 : m - elect + 1 }
}

interface Waiter {
  seq: number
  /** durable (enough replicas) or settled (every replica) */
  all: boolean
  resolve: () => void
  reject: (err: Error) => void
  timer: ReturnType<typeof setTimeout>
}

/** Callers waiting for a sequence number to be durable (on a quorum) or settled (on every replica), each with a timeout. */
export class SeqWaiters {
  #waiters: Waiter[] = []

  /** Resolves once `reached(all)` is at `seq`; rejects with `timedOut()`'s message after `timeoutMs`. */
  async wait (seq: number, all: boolean, timeoutMs: number, timedOut: () => string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        seq,
        all,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter(w => w !== waiter)
          reject(new UnavailableError(timedOut()))
        }, timeoutMs)
      }
      this.#waiters.push(waiter)
    })
  }

  /** Releases the waiters whose seq is now durable or settled. */
  reached (durable: number, settled: number): void {
    const still: Waiter[] = []
    for (const w of this.#waiters) {
      if (w.seq <= (w.all ? settled : durable)) {
        clearTimeout(w.timer)
        w.resolve()
      } else {
        still.push(w)
      }
    }
    this.#waiters = still
  }

  rejectAll (message: string): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer)
      w.reject(new UnavailableError(message))
    }
    this.#waiters = []
  }
}
