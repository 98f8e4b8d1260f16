import { COMPLETION_INDEX, INDEX_FAILURE_COUNT, INDEX_IGNORED_FAILURE_COUNT } from './job-rules.ts'
import type { Job, Pod } from './wire.ts'

/**
 * A pod for a Job, built from its template as the Job controller builds it:
 * owned by the Job (controller reference), and for an Indexed Job named
 * `<job>-<index>-<5 chars>`, hostname `<job>-<index>`, the index in a label
 * and an annotation, JOB_COMPLETION_INDEX read from that annotation by a
 * fieldRef, and the index's failure counts when backoffLimitPerIndex is set.
 */
export function podForJob (job: Job, index: number | undefined, failures: { counted: number, ignored: number }): Pod {
  const name = job.metadata.name!
  const template = structuredClone(job.spec.template)
  const labels = { ...template.metadata?.labels }
  const annotations = { ...template.metadata?.annotations }
  const spec = template.spec
  if (index !== undefined) {
    labels[COMPLETION_INDEX] = String(index)
    annotations[COMPLETION_INDEX] = String(index)
    if (job.spec.backoffLimitPerIndex !== undefined) {
      annotations[INDEX_FAILURE_COUNT] = String(failures.counted)
      if (failures.ignored > 0) annotations[INDEX_IGNORED_FAILURE_COUNT] = String(failures.ignored)
    }
    spec.hostname ??= `${name}-${index}`
    for (const c of spec.containers) {
      if ((c.env ?? []).some(e => e.name === 'JOB_COMPLETION_INDEX')) continue
      c.env = [...(c.env ?? []), { name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: `metadata.annotations['${COMPLETION_INDEX}']` } } }]
    }
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: index === undefined ? `${name}-` : `${name}-${index}-`,
      namespace: job.metadata.namespace!,
      labels,
      annotations,
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid: job.metadata.uid!, controller: true, blockOwnerDeletion: true }]
    },
    spec,
    status: { phase: 'Pending' }
  }
}

/** the Job that controls the pod, if any */
export function controllerOf (pod: Pod): { name: string, uid: string } | undefined {
  const ref = (pod.metadata.ownerReferences ?? []).find(r => r.controller === true && r.kind === 'Job' && r.apiVersion === 'batch/v1')
  return ref === undefined ? undefined : { name: ref.name, uid: ref.uid }
}
