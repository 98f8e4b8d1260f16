import type { Capability } from '../protocols/membership/capabilities.ts'

/**
 * Probe plugin (`--probe-plugin`) of the bench's worker nodes. A campaign that
 * requires this capability runs on them only, never on its coordinator, which
 * `--slots` cannot keep from working (it takes a positive number).
 */
export const WORKER_CAPABILITY = 'bench.role.worker'

export function probe (): Record<string, Capability> {
  return { [WORKER_CAPABILITY]: { status: 'ok' } }
}
