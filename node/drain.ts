import type { Logger } from 'pino'
import { deadline, raceSignal } from '../protocols/common/signals.ts'

/** Work a draining node finishes, or hands back once `signal` aborts (the drain deadline). */
export type DrainHook = (signal: AbortSignal) => Promise<void>

/** past the drain deadline, how long the hooks get to hand their work back before the node stops anyway */
export const HAND_BACK_MS = 5000

/**
 * Runs every hook until it is done or, at `timeoutMs`, told to hand its work back; one that hangs even so (a
 * result it cannot deliver) is given up on HAND_BACK_MS later, so it does not keep the node up.
 */
export async function runDrainHooks (hooks: Iterable<DrainHook>, timeoutMs: number, log: Logger): Promise<void> {
  const d = deadline(timeoutMs)
  const hard = deadline(timeoutMs + HAND_BACK_MS)
  try {
    await raceSignal(Promise.allSettled([...hooks].map(async hook => { await hook(d.signal) })), hard.signal)
  } catch {
    log.warn({ drainTimeoutMs: timeoutMs }, `work was not handed back within ${HAND_BACK_MS} ms of the drain deadline; stopping anyway`)
  } finally {
    d.clear()
    hard.clear()
  }
}
