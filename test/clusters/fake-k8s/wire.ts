/**
 * The JSON shapes the fake stores and serves: only the fields it reads or
 * writes are typed; anything else a client sends is kept as it came.
 * Timestamps are RFC 3339 strings, as on the wire.
 */
export interface OwnerReference {
  apiVersion: string
  kind: string
  name: string
  uid: string
  controller?: boolean
  blockOwnerDeletion?: boolean
}

export interface ObjectMeta {
  name?: string
  generateName?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  creationTimestamp?: string
  deletionTimestamp?: string
  deletionGracePeriodSeconds?: number
  labels?: Record<string, string>
  annotations?: Record<string, string>
  ownerReferences?: OwnerReference[]
  finalizers?: string[]
}

export interface KObject {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
}

export interface Condition {
  type: string
  status: 'True' | 'False' | 'Unknown'
  reason?: string
  message?: string
  lastProbeTime?: string | null
  lastTransitionTime?: string
}

export interface EnvVar {
  name: string
  value?: string
  valueFrom?: {
    fieldRef?: { fieldPath: string, apiVersion?: string }
    secretKeyRef?: { name: string, key: string, optional?: boolean }
    configMapKeyRef?: { name: string, key: string, optional?: boolean }
    resourceFieldRef?: unknown
    fileKeyRef?: unknown
  }
}

export interface EnvFromSource {
  prefix?: string
  secretRef?: { name: string, optional?: boolean }
  configMapRef?: { name: string, optional?: boolean }
}

export interface Container {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: EnvVar[]
  envFrom?: EnvFromSource[]
  resources?: { requests?: Record<string, string>, limits?: Record<string, string> }
}

export interface PodSpec {
  containers: Container[]
  restartPolicy?: 'Always' | 'OnFailure' | 'Never'
  terminationGracePeriodSeconds?: number
  nodeName?: string
  hostname?: string
}

export interface ContainerState {
  waiting?: { reason: string, message?: string }
  running?: { startedAt: string }
  terminated?: { exitCode: number, signal?: number, reason: string, message?: string, startedAt?: string, finishedAt: string, containerID?: string }
}

export interface ContainerStatus {
  name: string
  image: string
  imageID: string
  containerID?: string
  ready: boolean
  started: boolean
  restartCount: number
  state: ContainerState
  lastState: ContainerState
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed'

export interface PodStatus {
  phase: PodPhase
  conditions?: Condition[]
  containerStatuses?: ContainerStatus[]
  hostIP?: string
  hostIPs?: Array<{ ip: string }>
  podIP?: string
  podIPs?: Array<{ ip: string }>
  startTime?: string
  qosClass?: string
}

export interface Pod extends KObject {
  spec: PodSpec
  status: PodStatus
}

export interface PodFailurePolicyRule {
  action: 'FailJob' | 'FailIndex' | 'Ignore' | 'Count'
  onExitCodes?: { containerName?: string, operator: 'In' | 'NotIn', values: number[] }
  onPodConditions?: Array<{ type: string, status?: string }>
}

export interface JobSpec {
  template: { metadata?: ObjectMeta, spec: PodSpec }
  parallelism?: number
  completions?: number
  completionMode?: 'NonIndexed' | 'Indexed'
  backoffLimit?: number
  backoffLimitPerIndex?: number
  maxFailedIndexes?: number
  activeDeadlineSeconds?: number
  ttlSecondsAfterFinished?: number
  podFailurePolicy?: { rules: PodFailurePolicyRule[] }
  podReplacementPolicy?: 'TerminatingOrFailed' | 'Failed'
  selector?: { matchLabels?: Record<string, string> }
  suspend?: boolean
}

export interface JobStatus {
  active?: number
  succeeded?: number
  failed?: number
  ready?: number
  terminating?: number
  completedIndexes?: string
  failedIndexes?: string
  startTime?: string
  completionTime?: string
  conditions?: Condition[]
  uncountedTerminatedPods?: Record<string, never>
}

export interface Job extends KObject {
  spec: JobSpec
  status: JobStatus
}

export interface Secret extends KObject {
  type?: string
  data?: Record<string, string>
  stringData?: Record<string, string>
}

export interface Namespace extends KObject {
  spec?: { finalizers?: string[] }
  status?: { phase: 'Active' | 'Terminating' }
}

export interface DeleteOptions {
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground'
  gracePeriodSeconds?: number
  orphanDependents?: boolean
}
