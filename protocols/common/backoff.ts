export interface Backoff {
  initialMs: number
  factor: number
  maxMs: number
  /** fraction of the delay added or removed at random, so retries do not march in step */
  jitter?: number
}

/** Delay before retry number `attempt` (1-based). */
export function backoffDelay (policy: Backoff, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(policy.factor, Math.max(0, attempt - 1)))
  const jitter = policy.jitter ?? 0
  return Math.round(base * (1 - jitter + 2 * jitter * random()))
}
