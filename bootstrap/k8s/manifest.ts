import type { V1EnvVar, V1Job, V1OwnerReference, V1ResourceRequirements, V1Secret } from '@kubernetes/client-node'
import { ALLOCATION_LABEL, BRIDGE_LABEL, type K8sUp } from '../../protocols/bridge/schema.ts'
import type { JoinCommand } from '../bridge/engine.ts'

/**
 * The Kubernetes objects of one allocation, built from its options alone
 * (pure, so a unit test checks them against the API's schemas): an Indexed
 * Job whose pods each run `zp-node join`, and a Secret with the mesh key.
 */

/** the container's name, also named by the pod failure policy */
export const CONTAINER = 'zp-node'
/** label every pod of a Job carries (Kubernetes ≥ 1.27), how its pods are listed */
export const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name'
/** the Secret's key holding the swarm key file's text */
export const PSK_KEY = 'psk'
/** the env var the container reads the key from (zp-node --psk-env) */
export const PSK_ENV = 'ZP_PSK'
/** a pod's failures before its index is given up (its node crashed that often: bad image, bad key) */
export const BACKOFF_LIMIT_PER_INDEX = 3
/** finished Jobs (and their pods' logs) stay this long for a look, then Kubernetes removes them */
export const TTL_AFTER_FINISHED_S = 86_400
/** zp-node's exit code for bad input (flags, key): a retry fails the same way */
const EXIT_USAGE = 2
/**
 * zp-node's exit code after a drain SIGTERM started (--signal-exit-code):
 * a pod that exited 0 completes its index and is not replaced, so a node
 * stopped by a pod deletion, eviction or node drain must not exit 0 (an
 * idle exit does, and completes its index)
 */
export const SIGNAL_EXIT = 143
/** beyond the drain: the node's own stop after it (libp2p goodbye, LevelDB close) */
const STOP_MARGIN_S = 10

/** `zp-<suffix>` for allocation `k8s-<suffix>` */
export function jobName (allocationId: string): string {
  return `zp-${allocationId.replace(/^k8s-/, '')}`
}

export function secretName (job: string): string {
  return `${job}-psk`
}

export function objectLabels (allocationId: string): Record<string, string> {
  return { 'app.kubernetes.io/name': 'zp-node', 'app.kubernetes.io/managed-by': 'zp-mesh', [ALLOCATION_LABEL]: allocationId }
}

const SUFFIX: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 }

/** Cores in a CPU quantity (500m → 0.5, 2 → 2), as the schema's Quantity pattern admits them. */
export function cpuCores (quantity: string): number {
  const [, number, suffix] = /^(\d+(?:\.\d+)?)([a-zA-Z]*)$/.exec(quantity) ?? []
  if (number == null) throw new Error(`'${quantity}' is not a Kubernetes quantity such as 500m or 2`)
  return Number(number) * (suffix === '' ? 1 : SUFFIX[suffix!] ?? Number.NaN)
}

export interface K8sManifestInput {
  /** allocation id, k8s-<suffix> */
  id: string
  namespace: string
  options: K8sUp
  join: JoinCommand
  /** the swarm key file's text, put in a Secret (join.pskFile's path means nothing inside a pod) */
  psk?: string
}

/** The zp-node command line of every pod; `$(JOB_COMPLETION_INDEX)` is expanded by Kubernetes from the container's env. */
export function joinCommand (input: K8sManifestInput): string[] {
  const { id, options, join } = input
  return [
    'zp-node', 'join', ...join.bootstrap,
    '--name', `${id}-$(JOB_COMPLETION_INDEX)`,
    // relative: the container's working dir, which lives as long as the pod
    '--data-dir', 'zp-data',
    '--listen', '/ip4/0.0.0.0/tcp/0',
    '--no-api', '--no-resume',
    ...(options.cpu != null ? ['--slots', String(Math.max(1, Math.ceil(cpuCores(options.cpu))))] : []),
    '--label', `${BRIDGE_LABEL}=k8s`, '--label', `k8s.job=${jobName(id)}`, '--label', `${ALLOCATION_LABEL}=${id}`,
    '--drain-timeout-ms', String(join.drainMs),
    '--signal-exit-code', String(SIGNAL_EXIT),
    ...(input.psk != null ? ['--psk-env', PSK_ENV] : []),
    ...(join.idleMs != null ? ['--exit-when-idle', String(join.idleMs)] : [])
  ]
}

function resources (options: K8sUp): V1ResourceRequirements | undefined {
  const fixed: Record<string, string> = {
    ...(options.cpu != null ? { cpu: options.cpu } : {}),
    ...(options.memory != null ? { memory: options.memory } : {})
  }
  // extended resources (GPUs) are asked for by their limit alone
  const gpus: Record<string, string> = options.gpus != null && options.gpus > 0 ? { [options.gpuResource ?? 'nvidia.com/gpu']: String(options.gpus) } : {}
  if (Object.keys(fixed).length === 0 && Object.keys(gpus).length === 0) return undefined
  // requests = limits: the pod's slots are really its own (Guaranteed QoS when both are given)
  return { ...(Object.keys(fixed).length > 0 ? { requests: fixed } : {}), limits: { ...fixed, ...gpus } }
}

export function secretManifest (input: K8sManifestInput & { psk: string }): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: secretName(jobName(input.id)), namespace: input.namespace, labels: objectLabels(input.id) },
    type: 'Opaque',
    data: { [PSK_KEY]: Buffer.from(input.psk).toString('base64') }
  }
}

export function jobManifest (input: K8sManifestInput): V1Job {
  const { id, namespace, options, join } = input
  const name = jobName(id)
  const labels = objectLabels(id)
  const env: V1EnvVar[] = [
    // what the pod joined through, for whoever looks at it (kubectl describe); the command names the same
    { name: 'ZP_BOOTSTRAP', value: join.bootstrap.join(' ') },
    ...(input.psk != null ? [{ name: PSK_ENV, valueFrom: { secretKeyRef: { name: secretName(name), key: PSK_KEY } } }] : [])
  ]
  const res = resources(options)
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace, labels },
    spec: {
      completionMode: 'Indexed',
      completions: options.nodes,
      parallelism: options.nodes,
      backoffLimitPerIndex: BACKOFF_LIMIT_PER_INDEX,
      // one index given up does not stop the others; the Job fails once every index has
      maxFailedIndexes: options.nodes - 1,
      podFailurePolicy: {
        rules: [
          // deletions, preemptions and node drains are not the node's fault: the index gets a new pod
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          // a pod deleted through the API carries no DisruptionTarget: its node drained and exited thus, and did not fail
          { action: 'Ignore', onExitCodes: { containerName: CONTAINER, operator: 'In', values: [SIGNAL_EXIT] } },
          { action: 'FailIndex', onExitCodes: { containerName: CONTAINER, operator: 'In', values: [EXIT_USAGE] } }
        ]
      },
      ttlSecondsAfterFinished: TTL_AFTER_FINISHED_S,
      template: {
        metadata: { labels },
        spec: {
          // a pod failure policy requires it; the Job makes the new pod
          restartPolicy: 'Never',
          terminationGracePeriodSeconds: Math.ceil(join.drainMs / 1000) + STOP_MARGIN_S,
          ...(options.serviceAccount != null ? { serviceAccountName: options.serviceAccount } : {}),
          ...(options.nodeSelector != null ? { nodeSelector: options.nodeSelector } : {}),
          containers: [{
            name: CONTAINER,
            image: options.image,
            ...(options.imagePullPolicy != null ? { imagePullPolicy: options.imagePullPolicy } : {}),
            // the command itself, not the image's entrypoint: any image with zp-node on its PATH serves
            command: joinCommand(input),
            env,
            ...(res != null ? { resources: res } : {})
          }]
        }
      }
    }
  }
}

/** The Secret's owner: deleting the Job (or its TTL running out) garbage-collects the Secret with it. */
export function ownedBy (job: V1Job): V1OwnerReference[] {
  if (job.metadata?.name == null || job.metadata.uid == null) throw new Error('the created Job came back without a name and uid')
  return [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid, blockOwnerDeletion: false }]
}
