/** At most ten progress reports a second per shard: they travel to the coordinator. */
const PROGRESS_INTERVAL_MS = 100

export interface ProgressLimiter {
  push: (fraction: number) => void
  /** drop a pending report; call when the shard has settled */
  stop: () => void
}

/**
 * Reports the first value at once, then at most one per interval; the latest
 * value of an interval is sent at its end, so a shard that reports 0.5 and
 * then computes for an hour does not stay at the previous figure.
 */
export function progressLimiter (report: (fraction: number) => void, intervalMs = PROGRESS_INTERVAL_MS): ProgressLimiter {
  let lastSent = -Infinity
  let pending: number | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  const send = (fraction: number): void => {
    lastSent = performance.now()
    pending = undefined
    report(fraction)
  }
  return {
    push: (fraction) => {
      if (typeof fraction !== 'number' || Number.isNaN(fraction)) return
      const clamped = Math.min(1, Math.max(0, fraction))
      if (performance.now() - lastSent >= intervalMs && timer === undefined) {
        send(clamped)
        return
      }
      pending = clamped
      timer ??= setTimeout(() => {
        timer = undefined
        if (pending !== undefined) send(pending)
      }, Math.max(0, intervalMs - (performance.now() - lastSent)))
      timer.unref?.()
    },
    stop: () => {
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      pending = undefined
    }
  }
}
