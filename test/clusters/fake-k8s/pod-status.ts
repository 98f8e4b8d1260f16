import { setCondition } from './conditions.ts'
import { NODE_IP } from './container-env.ts'
import { now } from './store.ts'
import type { ContainerState, Pod, PodPhase } from './wire.ts'

/**
 * The status the kubelet reports at each step of a pod's one container:
 * created (waiting), running, waiting again (back-off, config error, image),
 * terminated. Each changes a copy of the pod in place.
 */
export interface Exit {
  exitCode: number
  signal?: number
  reason: string
  message?: string
  startedAt?: string
  finishedAt: string
  containerID?: string
}

function container (pod: Pod): NonNullable<Pod['status']['containerStatuses']>[number] {
  const spec = pod.spec.containers[0]!
  pod.status.containerStatuses ??= [{ name: spec.name, image: spec.image ?? '', imageID: '', ready: false, started: false, restartCount: 0, state: {}, lastState: {} }]
  return pod.status.containerStatuses[0]!
}

function notReady (pod: Pod, reason: string, message?: string): void {
  for (const type of ['Ready', 'ContainersReady']) {
    pod.status.conditions = setCondition(pod.status.conditions, { type, status: 'False', reason, ...(message === undefined ? {} : { message }) })
  }
}

/** the kubelet has admitted the pod: sandbox up, IPs known, the container being created */
export function admitted (pod: Pod): void {
  pod.status.hostIP = NODE_IP
  pod.status.hostIPs = [{ ip: NODE_IP }]
  pod.status.podIP = NODE_IP
  pod.status.podIPs = [{ ip: NODE_IP }]
  pod.status.startTime ??= now()
  for (const type of ['PodReadyToStartContainers', 'Initialized']) pod.status.conditions = setCondition(pod.status.conditions, { type, status: 'True' })
  waiting(pod, 'ContainerCreating')
}

export function waiting (pod: Pod, reason: string, message?: string): void {
  const c = container(pod)
  c.state = { waiting: { reason, ...(message === undefined ? {} : { message }) } }
  c.ready = false
  c.started = false
  notReady(pod, 'ContainersNotReady', `containers with unready status: [${c.name}]`)
}

export function running (pod: Pod, containerID: string): void {
  const c = container(pod)
  c.state = { running: { startedAt: now() } }
  c.containerID = containerID
  c.imageID = `fake-k8s://${c.image}`
  c.ready = true
  c.started = true
  pod.status.phase = 'Running'
  for (const type of ['Ready', 'ContainersReady']) pod.status.conditions = setCondition(pod.status.conditions, { type, status: 'True' })
}

/** the container exited and will be started again after `backoffSeconds` (restartPolicy Always, or OnFailure after a failure) */
export function crashLooping (pod: Pod, exit: Exit, backoffSeconds: number): void {
  const c = container(pod)
  c.lastState = { terminated: exit }
  c.restartCount++
  waiting(pod, 'CrashLoopBackOff', `back-off ${backoffSeconds}s restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`)
}

/**
 * The pod is done: phase Succeeded when its container exited 0, else
 * Failed; a container that never ran leaves the pod Failed with its
 * waiting state kept.
 */
export function finished (pod: Pod, exit: Exit | undefined): void {
  const c = container(pod)
  if (exit !== undefined) c.state = { terminated: exit } satisfies ContainerState
  c.ready = false
  c.started = false
  const phase: PodPhase = exit?.exitCode === 0 ? 'Succeeded' : 'Failed'
  pod.status.phase = phase
  notReady(pod, 'PodCompleted')
}
