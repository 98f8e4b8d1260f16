import type { Container, Job, Namespace, Pod, PodSpec, Secret } from './wire.ts'

/**
 * What kube-apiserver fills in before validating (SetDefaults_* and the
 * default admission plugins), so stored objects read back as a real
 * cluster's do. Changes the object in place.
 */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name'
export const LEGACY_JOB_NAME_LABEL = 'job-name'
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid'
export const LEGACY_CONTROLLER_UID_LABEL = 'controller-uid'
const MAX_INT32 = 2147483647

export function defaultPodSpec (spec: PodSpec): void {
  const s = spec as PodSpec & Record<string, unknown>
  s.restartPolicy ??= 'Always'
  s.terminationGracePeriodSeconds ??= 30
  s.dnsPolicy ??= 'ClusterFirst'
  s.schedulerName ??= 'default-scheduler'
  s.securityContext ??= {}
  s.enableServiceLinks ??= true
  for (const c of spec.containers ?? []) defaultContainer(c)
}

function defaultContainer (c: Container): void {
  const d = c as Container & Record<string, unknown>
  d.terminationMessagePath ??= '/dev/termination-log'
  d.terminationMessagePolicy ??= 'File'
  if (typeof c.image === 'string') d.imagePullPolicy ??= /:[^/]*$/.test(c.image) && !c.image.endsWith(':latest') ? 'IfNotPresent' : 'Always'
  d.resources ??= {}
  for (const env of c.env ?? []) {
    if (env.valueFrom?.fieldRef !== undefined) env.valueFrom.fieldRef.apiVersion ??= 'v1'
  }
}

export function defaultPod (pod: Pod): void {
  pod.spec ??= { containers: [] }
  defaultPodSpec(pod.spec)
  const s = pod.spec as PodSpec & Record<string, unknown>
  // admission: ServiceAccount, Priority, DefaultTolerationSeconds
  s.serviceAccountName ??= 'default'
  s.serviceAccount ??= s.serviceAccountName
  s.priority ??= 0
  s.tolerations ??= ['not-ready', 'unreachable'].map(t => ({ key: `node.kubernetes.io/${t}`, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }))
  for (const c of pod.spec.containers ?? []) {
    const limits = c.resources?.limits
    if (limits !== undefined) c.resources!.requests = { ...limits, ...c.resources!.requests }
  }
  pod.status = { phase: 'Pending', qosClass: qosClass(pod.spec.containers ?? []) }
}

function qosClass (containers: Container[]): string {
  const all = containers.map(c => ({ requests: c.resources?.requests ?? {}, limits: c.resources?.limits ?? {} }))
  const compute = (r: Record<string, string>): string[] => Object.keys(r).filter(k => k === 'cpu' || k === 'memory')
  if (all.every(c => compute(c.requests).length === 0 && compute(c.limits).length === 0)) return 'BestEffort'
  const guaranteed = all.every(c => ['cpu', 'memory'].every(k => c.limits[k] !== undefined && (c.requests[k] ?? c.limits[k]) === c.limits[k]))
  return guaranteed ? 'Guaranteed' : 'Burstable'
}

/** the Job's own defaults, then the selector and template labels the API server generates from its uid */
export function defaultJob (job: Job): void {
  const spec = job.spec
  const name = job.metadata.name ?? ''
  const uid = job.metadata.uid ?? ''
  job.metadata.generation = 1
  if (spec.completions === undefined && spec.parallelism === undefined) {
    spec.completions = 1
    spec.parallelism = 1
  }
  spec.parallelism ??= 1
  spec.backoffLimit ??= spec.backoffLimitPerIndex !== undefined ? MAX_INT32 : 6
  spec.completionMode ??= 'NonIndexed'
  spec.suspend ??= false
  spec.podReplacementPolicy ??= spec.podFailurePolicy !== undefined ? 'Failed' : 'TerminatingOrFailed'
  for (const rule of spec.podFailurePolicy?.rules ?? []) {
    for (const c of rule.onPodConditions ?? []) c.status ??= 'True'
  }
  spec.template ??= { spec: { containers: [] } }
  spec.template.metadata ??= {}
  if ((spec as { manualSelector?: boolean }).manualSelector !== true) {
    spec.selector = { matchLabels: { [CONTROLLER_UID_LABEL]: uid } }
    spec.template.metadata.labels = {
      ...spec.template.metadata.labels,
      [CONTROLLER_UID_LABEL]: uid,
      [JOB_NAME_LABEL]: name,
      [LEGACY_CONTROLLER_UID_LABEL]: uid,
      [LEGACY_JOB_NAME_LABEL]: name
    }
  }
  spec.template.spec ??= { containers: [] }
  defaultPodSpec(spec.template.spec)
  job.status = {}
}

/**
 * A Job without labels of its own carries its pods' (the generated ones
 * included), as `kubectl get job -o yaml` shows; applied after validation,
 * which reports a too-long name once, at spec.template.labels.
 */
export function labelJobFromTemplate (job: Job): void {
  const templateLabels = job.spec.template.metadata?.labels
  if (templateLabels !== undefined && Object.keys(job.metadata.labels ?? {}).length === 0) job.metadata.labels = { ...templateLabels }
}

/** stringData is written into data (base64) and dropped, as the v1 conversion does */
export function defaultSecret (secret: Secret): void {
  secret.type ??= 'Opaque'
  if (secret.stringData !== undefined) {
    secret.data = { ...secret.data }
    for (const [k, v] of Object.entries(secret.stringData)) secret.data[k] = Buffer.from(v, 'utf8').toString('base64')
    delete secret.stringData
  }
}

export function defaultNamespace (ns: Namespace): void {
  ns.metadata.labels = { ...ns.metadata.labels, 'kubernetes.io/metadata.name': ns.metadata.name ?? '' }
  ns.spec = { finalizers: ['kubernetes'] }
  ns.status = { phase: 'Active' }
}
