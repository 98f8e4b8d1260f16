import { existsSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import {
  BatchV1Api, CoreV1Api, KubeConfig, Observable,
  type ConfigurationOptions, type V1Job, type V1OwnerReference, type V1Pod, type V1Secret
} from '@kubernetes/client-node'
import { describeError } from '../../protocols/common/errors.ts'
import { deadline, raceSignal } from '../../protocols/common/signals.ts'
import { K8sError, toK8sError, type K8sCall } from './errors.ts'
import { JOB_NAME_LABEL } from './manifest.ts'

/** one API call: an answer comes in well under a second; a busy managed control plane may take a few */
const CALL_TIMEOUT_MS = 30_000

/** Which cluster and namespace: `zp bridge k8s up --kubeconfig/--context/--namespace`. */
export interface K8sTarget {
  kubeconfig?: string
  context?: string
  namespace?: string
}

/** Per-call options that give the request the caller's signal (client-node's fetch takes it from the request context). */
function withSignal (signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [{
      pre: ctx => {
        ctx.setSignal(signal)
        return new Observable(Promise.resolve(ctx))
      },
      post: ctx => new Observable(Promise.resolve(ctx))
    }],
    middlewareMergeStrategy: 'append'
  }
}

/** Loads the kubeconfig the node can see; each failure names the file or context and the fix. */
function loadKubeConfig (target: K8sTarget, env: NodeJS.ProcessEnv): { kc: KubeConfig, source: string } {
  const kc = new KubeConfig()
  const home = join(homedir(), '.kube', 'config')
  const source = target.kubeconfig ?? (env.KUBECONFIG != null && env.KUBECONFIG !== '' ? env.KUBECONFIG : existsSync(home) ? home : env.KUBERNETES_SERVICE_HOST != null ? 'the in-cluster service account' : undefined)
  if (source == null) {
    throw new K8sError('config', 'no kubeconfig for the node to reach Kubernetes with: pass --kubeconfig FILE (or a kubeconfig: in the burst), or start the node with KUBECONFIG set or a ~/.kube/config (the node reads it, not the zp command)')
  }
  try {
    if (target.kubeconfig != null) kc.loadFromFile(target.kubeconfig)
    else kc.loadFromDefault()
  } catch (err) {
    throw new K8sError('config', `cannot load the kubeconfig (${source}): ${(err as NodeJS.ErrnoException).code ?? describeError(err)}; pass --kubeconfig with a readable kubeconfig file`, { cause: err })
  }
  if (target.context != null) {
    if (kc.getContextObject(target.context) == null) {
      throw new K8sError('config', `the kubeconfig (${source}) has no context '${target.context}' (it has: ${kc.getContexts().map(c => c.name).join(', ') || 'none'}); pass one of those to --context`)
    }
    kc.setCurrentContext(target.context)
  }
  if (kc.getCurrentCluster() == null) {
    throw new K8sError('config', `the kubeconfig (${source}) names no cluster for context '${kc.getCurrentContext()}'; pass --context with a context that has one`)
  }
  return { kc, source }
}

/**
 * The bridge's port to one namespace of a Kubernetes cluster through
 * @kubernetes/client-node: the calls it makes, each with a timeout and the
 * caller's signal, each failure a K8sError naming the fix.
 */
export class K8sClient {
  readonly namespace: string
  /** the API server's address */
  readonly server: string
  readonly context: string
  readonly #batch: BatchV1Api
  readonly #core: CoreV1Api

  constructor (target: K8sTarget, env: NodeJS.ProcessEnv = process.env) {
    const { kc } = loadKubeConfig(target, env)
    this.context = kc.getCurrentContext()
    this.server = kc.getCurrentCluster()!.server
    this.namespace = target.namespace ?? kc.getContextObject(this.context)?.namespace ?? 'default'
    this.#batch = kc.makeApiClient(BatchV1Api)
    this.#core = kc.makeApiClient(CoreV1Api)
  }

  async createSecret (secret: V1Secret, signal: AbortSignal): Promise<V1Secret> {
    return await this.#call({ verb: 'create', resource: 'Secret', name: secret.metadata?.name }, signal, async o => await this.#core.createNamespacedSecret({ namespace: this.namespace, body: secret }, o))
  }

  /** Makes the Secret (as created) a dependent of the Job, so Kubernetes deletes it with the Job. */
  async ownSecret (secret: V1Secret, owners: V1OwnerReference[], signal: AbortSignal): Promise<void> {
    const name = secret.metadata?.name ?? ''
    // an update of the object as created: its resourceVersion makes it fail rather than overwrite a change
    const body: V1Secret = { ...secret, metadata: { ...secret.metadata, ownerReferences: owners } }
    await this.#call({ verb: 'update', resource: 'Secret', name }, signal, async o => await this.#core.replaceNamespacedSecret({ name, namespace: this.namespace, body }, o))
  }

  /** Deletes the Secret; false when it was not there. */
  async deleteSecret (name: string, signal: AbortSignal): Promise<boolean> {
    return await this.#gone({ verb: 'delete', resource: 'Secret', name }, signal, async o => await this.#core.deleteNamespacedSecret({ name, namespace: this.namespace }, o))
  }

  async createJob (job: V1Job, signal: AbortSignal): Promise<V1Job> {
    return await this.#call({ verb: 'create', resource: 'Job', name: job.metadata?.name }, signal, async o => await this.#batch.createNamespacedJob({ namespace: this.namespace, body: job }, o))
  }

  /** The Job, or undefined when it is gone (deleted, or removed after it finished). */
  async readJob (name: string, signal: AbortSignal): Promise<V1Job | undefined> {
    try {
      return await this.#call({ verb: 'get', resource: 'Job', name }, signal, async o => await this.#batch.readNamespacedJob({ name, namespace: this.namespace }, o))
    } catch (err) {
      if (err instanceof K8sError && (err.code === 'not-found' || err.code === 'no-namespace')) return undefined
      throw err
    }
  }

  /** Deletes the Job and, in the background, its pods; false when it was not there. */
  async deleteJob (name: string, signal: AbortSignal): Promise<boolean> {
    // without a propagation policy a Job's pods are orphaned and keep running
    return await this.#gone({ verb: 'delete', resource: 'Job', name }, signal, async o => await this.#batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: 'Background' }, o))
  }

  /** Every pod of the Job, whatever its phase. */
  async jobPods (job: string, signal: AbortSignal): Promise<V1Pod[]> {
    const list = await this.#call({ verb: 'list', resource: 'pods' }, signal, async o => await this.#core.listNamespacedPod({ namespace: this.namespace, labelSelector: `${JOB_NAME_LABEL}=${job}` }, o))
    return list.items
  }

  async #gone (call: Omit<K8sCall, 'namespace' | 'server' | 'context'>, signal: AbortSignal, fn: (o: ConfigurationOptions) => Promise<unknown>): Promise<boolean> {
    try {
      await this.#call(call, signal, fn)
      return true
    } catch (err) {
      if (err instanceof K8sError && err.code === 'not-found') return false
      throw err
    }
  }

  async #call<T> (call: Omit<K8sCall, 'namespace' | 'server' | 'context'>, signal: AbortSignal, fn: (o: ConfigurationOptions) => Promise<T>): Promise<T> {
    const d = deadline(CALL_TIMEOUT_MS, signal)
    try {
      // the race ends the wait even where a request would not see the signal (credential plugins, say)
      return await raceSignal(fn(withSignal(d.signal)), d.signal)
    } catch (err) {
      throw toK8sError(d.signal.aborted ? d.signal.reason : err, { ...call, namespace: this.namespace, server: this.server, context: this.context })
    } finally {
      d.clear()
    }
  }
}
