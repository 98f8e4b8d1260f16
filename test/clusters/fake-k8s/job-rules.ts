import type { Job, Pod, PodFailurePolicyRule } from './wire.ts'

/**
 * The Job controller's pure rules: which podFailurePolicy rule a failed
 * pod matches, the pod failure back-off, and the interval strings of
 * status.completedIndexes / failedIndexes ("0,2-4").
 */
export const COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index'
export const INDEX_FAILURE_COUNT = 'batch.kubernetes.io/job-index-failure-count'
export const INDEX_IGNORED_FAILURE_COUNT = 'batch.kubernetes.io/job-index-ignored-failure-count'

export interface RuleMatch {
  action: PodFailurePolicyRule['action']
  message: string
}

/** the first rule the pod matches, worded as the controller's PodFailurePolicy message */
export function matchPodFailurePolicy (job: Job, pod: Pod): RuleMatch | undefined {
  const who = `${pod.metadata.namespace}/${pod.metadata.name}`
  for (const [i, rule] of (job.spec.podFailurePolicy?.rules ?? []).entries()) {
    const onExit = rule.onExitCodes
    if (onExit !== undefined) {
      for (const status of pod.status.containerStatuses ?? []) {
        const code = status.state.terminated?.exitCode
        if (code === undefined || code === 0) continue
        if (onExit.containerName !== undefined && onExit.containerName !== status.name) continue
        if (onExit.values.includes(code) === (onExit.operator === 'In')) {
          return { action: rule.action, message: `Container ${status.name} for pod ${who} failed with exit code ${code} matching ${rule.action} rule at index ${i}` }
        }
      }
    }
    for (const pattern of rule.onPodConditions ?? []) {
      const hit = (pod.status.conditions ?? []).find(c => c.type === pattern.type && c.status === (pattern.status ?? 'True'))
      if (hit !== undefined) return { action: rule.action, message: `Pod ${who} has condition ${hit.type} matching ${rule.action} rule at index ${i}` }
    }
  }
  return undefined
}

/** the pod's completion index, or undefined when it has none that fits the Job */
export function indexOf (pod: Pod, completions: number | undefined): number | undefined {
  const raw = pod.metadata.annotations?.[COMPLETION_INDEX] ?? pod.metadata.labels?.[COMPLETION_INDEX]
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined
  const i = Number(raw)
  return completions !== undefined && i >= completions ? undefined : i
}

const BACKOFF_BASE_MS = 10_000
const BACKOFF_MAX_MS = 10 * 60_000

/** how long after its last failure a pod (or index) is created again: 10 s doubling per failure, at most 10 min */
export function backoffMs (failures: number): number {
  return failures <= 0 ? 0 : Math.min(BACKOFF_BASE_MS * 2 ** (failures - 1), BACKOFF_MAX_MS)
}

export function parseIntervals (text: string | undefined): Set<number> {
  const set = new Set<number>()
  for (const part of (text ?? '').split(',')) {
    if (part === '') continue
    const [a, b = a] = part.split('-').map(Number)
    for (let i = a!; i <= b!; i++) set.add(i)
  }
  return set
}

export function formatIntervals (set: Set<number>): string {
  const sorted = [...set].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; i++) {
    const start = sorted[i]!
    while (i + 1 < sorted.length && sorted[i + 1] === sorted[i]! + 1) i++
    parts.push(start === sorted[i] ? `${start}` : `${start}-${sorted[i]}`)
  }
  return parts.join(',')
}
