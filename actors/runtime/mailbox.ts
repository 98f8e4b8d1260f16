import { AbortError, MailboxFullError } from './errors.ts'

/**
 * A bounded FIFO. `offer` never blocks; `put` waits for room, which is how
 * backpressure reaches senders (and, for remote senders, the stream: the
 * inbound handler stops reading while it waits).
 */
export class Mailbox<T> {
  readonly capacity: number
  #items: T[] = []
  #head = 0
  #waiters: Array<() => void> = []

  constructor (capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`)
    this.capacity = capacity
  }

  get size (): number {
    return this.#items.length - this.#head
  }

  offer (item: T): boolean {
    if (this.size >= this.capacity) return false
    this.#items.push(item)
    return true
  }

  /** Waits for room until `signal` fires; rejects with MailboxFullError on timeout-abort. */
  async put (item: T, signal?: AbortSignal): Promise<void> {
    while (!this.offer(item)) {
      await this.#room(signal)
    }
  }

  shift (): T | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head] = undefined as T
    this.#head++
    // compact occasionally so a long-lived mailbox does not grow without bound
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    this.#wakeOne()
    return item
  }

  /** Removes and returns everything queued (used when an actor stops). */
  drain (): T[] {
    const rest = this.#items.slice(this.#head)
    this.#items = []
    this.#head = 0
    for (const wake of this.#waiters.splice(0)) wake()
    return rest
  }

  #wakeOne (): void {
    this.#waiters.shift()?.()
  }

  async #room (signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) throw abortReason(signal, this.capacity)
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(wake)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(abortReason(signal!, this.capacity))
      }
      const wake = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      this.#waiters.push(wake)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}

function abortReason (signal: AbortSignal, capacity: number): Error {
  const reason: unknown = signal.reason
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new MailboxFullError(`mailbox full (${capacity} messages) and no room was made before the timeout`)
  }
  return reason instanceof Error ? reason : new AbortError('aborted while waiting for mailbox room')
}
