import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node'
import type { EngineView } from '../../protocols/bridge/schema.ts'

/** container waiting reasons that mean the pod will not start by itself */
const STUCK = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError'])

function condition (job: V1Job, type: string): V1JobCondition | undefined {
  // conditions are found by type, never by position
  return job.status?.conditions?.find(c => c.type === type && c.status === 'True')
}

function said (c: V1JobCondition): string {
  return [c.reason, c.message].filter(s => s != null && s !== '').join(': ')
}

/** A running pod that is not being deleted (a deleted one is on its way out). */
function isRunning (pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && pod.metadata?.deletionTimestamp == null
}

/** Why a pod that should run does not: the scheduler's word (Unschedulable) or its container's (ErrImagePull …). */
export function pendingReason (pod: V1Pod): string | undefined {
  if (pod.status?.phase !== 'Pending' || pod.metadata?.deletionTimestamp != null) return undefined
  const name = pod.metadata?.name ?? 'a pod'
  const unscheduled = pod.status.conditions?.find(c => c.type === 'PodScheduled' && c.status === 'False')
  if (unscheduled != null) return `pod ${name} ${unscheduled.reason ?? 'is not scheduled'}${unscheduled.message != null ? `: ${unscheduled.message}` : ''}`
  for (const s of [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])]) {
    const waiting = s.state?.waiting
    if (waiting?.reason != null && STUCK.has(waiting.reason)) return `pod ${name} ${waiting.reason}${waiting.message != null ? `: ${waiting.message}` : ''}`
  }
  return undefined
}

/**
 * What the Job and its pods say of an allocation: FAILED or ENDED from the
 * Job's conditions; else RUNNING while a pod runs, PENDING while none does,
 * with the reason a pod waits (unschedulable, image pull) when there is one.
 * A Job that is gone was deleted or removed after it finished: ENDED.
 */
export function jobView (job: V1Job | undefined, pods: V1Pod[], requested: number): EngineView {
  if (job == null) return { state: 'ENDED', reason: 'the Job is gone (deleted, or removed after it finished)', requested, running: 0 }
  const wanted = job.spec?.completions ?? requested
  const failed = condition(job, 'Failed') ?? condition(job, 'FailureTarget')
  if (failed != null) return { state: 'FAILED', reason: `the Job failed: ${said(failed) || 'no reason given'}`, requested: wanted, running: 0 }
  const complete = condition(job, 'Complete') ?? condition(job, 'SuccessCriteriaMet')
  if (complete != null) return { state: 'ENDED', reason: 'every node finished (the Job is Complete)', requested: wanted, running: 0 }
  const running = pods.filter(isRunning).length
  const waiting = pods.map(pendingReason).find(r => r != null)
  return { state: running > 0 ? 'RUNNING' : 'PENDING', requested: wanted, running, ...(waiting != null ? { reason: waiting } : {}) }
}
