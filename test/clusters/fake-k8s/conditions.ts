import { now } from './store.ts'
import type { Condition, Pod } from './wire.ts'

/**
 * Sets a condition by type, keeping the list's order and the
 * lastTransitionTime when the status does not change. Pods carry
 * lastProbeTime null; Job conditions carry the time they were probed.
 */
export function setCondition (list: Condition[] | undefined, next: Omit<Condition, 'lastProbeTime' | 'lastTransitionTime'>, kind: 'pod' | 'job' = 'pod'): Condition[] {
  const conditions = [...(list ?? [])]
  const i = conditions.findIndex(c => c.type === next.type)
  const previous = i < 0 ? undefined : conditions[i]
  const time = now()
  const merged: Condition = {
    type: next.type,
    status: next.status,
    ...(next.reason === undefined ? {} : { reason: next.reason }),
    ...(next.message === undefined ? {} : { message: next.message }),
    lastProbeTime: kind === 'pod' ? null : time,
    lastTransitionTime: previous !== undefined && previous.status === next.status ? previous.lastTransitionTime! : time
  }
  if (i < 0) conditions.push(merged)
  else conditions[i] = merged
  return conditions
}

export function hasCondition (list: Condition[] | undefined, type: string, status = 'True'): boolean {
  return (list ?? []).some(c => c.type === type && c.status === status)
}

export const isTerminal = (pod: Pod): boolean => pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed'
