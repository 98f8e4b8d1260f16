import { randomBytes } from 'node:crypto'
import type { V1Job } from '@kubernetes/client-node'
import type { Allocation, EngineView, K8sUp } from '../../protocols/bridge/schema.ts'
import { describeError } from '../../protocols/common/errors.ts'
import { delay } from '../../protocols/common/signals.ts'
import { loadPsk } from '../../node/psk.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'
import { K8sClient } from './client.ts'
import { K8sError } from './errors.ts'
import { jobManifest, jobName, ownedBy, secretManifest, secretName } from './manifest.ts'
import { jobView } from './view.ts'

/** beyond the pods' grace period (drain + stop): the kubelet's and the garbage collector's own delays */
const DOWN_MARGIN_MS = 30_000
const POLL_MS = 500

function newId (): string {
  return `k8s-${randomBytes(3).toString('hex')}`
}

/** `<namespace>/<Job name>`, the allocation's engine id */
function parseEngineId (engineId: string): { namespace: string, job: string } {
  const [namespace, job] = engineId.split('/')
  if (namespace == null || job == null) throw new K8sError('config', `engine id '${engineId}' is not <namespace>/<job>`)
  return { namespace, job }
}

function clientFor (alloc: Allocation): { client: K8sClient, job: string } {
  const { namespace, job } = parseEngineId(alloc.engineId)
  const { kubeconfig, context } = alloc.options as K8sUp
  return { client: new K8sClient({ namespace, ...(kubeconfig != null ? { kubeconfig } : {}), ...(context != null ? { context } : {}) }), job }
}

/**
 * Creates the Secret (when the mesh has a key) and the Job; the Secret is
 * then owned by the Job so Kubernetes removes it with the Job even if
 * `down` never runs. A failure leaves nothing behind.
 */
async function create (client: K8sClient, id: string, options: K8sUp, join: JoinCommand, psk: string | undefined, signal: AbortSignal): Promise<void> {
  const input = { id, namespace: client.namespace, options, join, ...(psk != null ? { psk } : {}) }
  const job = jobManifest(input)
  const secret = psk != null ? secretManifest({ ...input, psk }) : undefined
  const stored = secret != null ? await client.createSecret(secret, signal) : undefined
  let created: V1Job | undefined
  try {
    created = await client.createJob(job, signal)
    if (stored != null) await client.ownSecret(stored, ownedBy(created), signal)
  } catch (err) {
    // best effort, and only what this call made (a 409 names someone else's Job): the error that matters is the one above
    const cleanup = AbortSignal.timeout(10_000)
    if (created != null) await client.deleteJob(jobName(id), cleanup).catch(() => {})
    if (stored != null) await client.deleteSecret(secretName(jobName(id)), cleanup).catch(() => {})
    throw err
  }
}

/** The key file's text, for the Secret. */
async function pskText (file: string): Promise<string> {
  try {
    return new TextDecoder().decode((await loadPsk(file)).bytes)
  } catch (err) {
    throw new K8sError('config', describeError(err), { cause: err })
  }
}

/**
 * Kubernetes capacity: one Indexed Job (and a Secret with the mesh key)
 * whose pods each run `zp-node join` labelled bridge=k8s, k8s.job=<Job>,
 * zp.bridge=<allocation id>, through @kubernetes/client-node.
 */
export function k8sEngine (): BridgeEngine<K8sUp> {
  return {
    engine: 'k8s',
    async up (options: K8sUp, join: JoinCommand, signal: AbortSignal): Promise<{ id: string, engineId: string, requested: number }> {
      const client = new K8sClient(options)
      // the key file's path means nothing in a pod: its text goes in a Secret
      const psk = join.pskFile != null ? await pskText(join.pskFile) : join.pskText
      let id = newId()
      try {
        await create(client, id, options, join, psk, signal)
      } catch (err) {
        // a name taken (an old allocation, or a clash of random names): once more under a new one
        if (!(err instanceof K8sError && err.code === 'conflict')) throw err
        id = newId()
        await create(client, id, options, join, psk, signal)
      }
      return { id, engineId: `${client.namespace}/${jobName(id)}`, requested: options.nodes }
    },
    async view (alloc: Allocation, signal: AbortSignal): Promise<EngineView> {
      const { client, job } = clientFor(alloc)
      const [found, pods] = await Promise.all([client.readJob(job, signal), client.jobPods(job, signal)])
      return jobView(found, pods, alloc.requested)
    },
    async down (alloc: Allocation, signal: AbortSignal): Promise<void> {
      const { client, job } = clientFor(alloc)
      await client.deleteJob(job, signal)
      await client.deleteSecret(secretName(job), signal)
      // the pods get SIGTERM, drain and stop within their grace period; down returns once none is left
      let until: number | undefined
      for (;;) {
        const left = await client.jobPods(job, signal)
        if (left.length === 0) return
        until ??= Date.now() + Math.max(...left.map(p => p.spec?.terminationGracePeriodSeconds ?? 30)) * 1000 + DOWN_MARGIN_MS
        if (Date.now() > until) {
          throw new K8sError('failed', `${left.length} pod${left.length === 1 ? '' : 's'} of Job ${job} still exist${left.length === 1 ? 's' : ''} after it was deleted (${left.map(p => p.metadata?.name).join(', ')}); check 'kubectl -n ${client.namespace} get pods -l batch.kubernetes.io/job-name=${job}'`)
        }
        await delay(POLL_MS, signal)
      }
    }
  }
}
