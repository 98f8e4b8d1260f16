import { isTerminal, setCondition } from './conditions.ts'
import { forbidden, notFound } from './errors.ts'
import { RESOURCES, type Resource } from './resources.ts'
import { now, type Store } from './store.ts'
import type { DeleteOptions, Job, KObject, Namespace, Pod } from './wire.ts'

/**
 * Deletion as kube-apiserver and the garbage collector do it:
 * - a pod on a node gets a deletionTimestamp and leaves the API when the
 *   kubelet has stopped it (at once if it never ran or already finished);
 * - a Job's dependents (its pods, and a Secret or Job whose ownerReferences
 *   name it) follow the propagation policy, and batch/v1 Jobs default to
 *   Orphan: they stay, their ownerReferences removed; Foreground keeps the
 *   Job (finalizer foregroundDeletion) until the dependents that block its
 *   deletion are gone;
 * - a namespace empties before it goes.
 */
export interface Disruption { reason: string, message: string }

const PROTECTED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease']
const DEPENDENT_KINDS: Resource[] = ['pods', 'secrets', 'jobs']

export class Deleter {
  readonly #store: Store
  #unsubscribe?: () => void

  constructor (store: Store) {
    this.#store = store
  }

  start (): void {
    this.#unsubscribe = this.#store.subscribe(event => {
      if (event.type === 'DELETED') this.#finishPending()
      else this.#collectIfDangling(event.resource, event.object)
    })
  }

  stop (): void {
    this.#unsubscribe?.()
  }

  /** DELETE of one object; returns the body the API answers with */
  delete (resource: Resource, namespace: string | undefined, name: string, opts: DeleteOptions, disruption?: Disruption): KObject | Record<string, unknown> {
    const obj = this.#store.get(resource, namespace, name)
    if (obj === undefined) throw notFound(resource, RESOURCES[resource].group, name)
    switch (resource) {
      case 'pods': return this.deletePod(obj as Pod, opts.gracePeriodSeconds, disruption)
      case 'jobs': return this.#deleteJob(obj as Job, policyOf(opts))
      case 'namespaces': return this.#deleteNamespace(obj as Namespace)
      default:
        this.#store.remove(resource, namespace, name)
        return success(resource, obj)
    }
  }

  deletePod (pod: Pod, gracePeriodSeconds: number | undefined, disruption?: Disruption): Pod {
    const { namespace, name, uid } = pod.metadata
    let grace = gracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30
    if (pod.spec.nodeName === undefined || isTerminal(pod)) grace = 0
    const pending = pod.metadata.deletionGracePeriodSeconds
    if (pending !== undefined && pending <= grace) return pod
    let current = this.#store.mutate<Pod>('pods', namespace, name!, p => {
      if (disruption !== undefined) p.status.conditions = setCondition(p.status.conditions, { type: 'DisruptionTarget', status: 'True', ...disruption })
      if (grace > 0) {
        p.metadata.deletionTimestamp = now(grace * 1000)
        p.metadata.deletionGracePeriodSeconds = grace
      }
    }, uid) ?? pod
    if (grace === 0) current = this.#store.remove<Pod>('pods', namespace, name!, uid) ?? current
    return current
  }

  #deleteJob (job: Job, policy: 'Orphan' | 'Background' | 'Foreground'): KObject | Record<string, unknown> {
    const { namespace, name, uid } = job.metadata
    if (job.metadata.deletionTimestamp !== undefined) return job
    if (policy === 'Background') {
      this.#store.remove('jobs', namespace, name!, uid)
      this.#collectDependents(namespace, uid!)
      return success('jobs', job)
    }
    const finalizer = policy === 'Orphan' ? 'orphan' : 'foregroundDeletion'
    const marked = this.#store.mutate<Job>('jobs', namespace, name!, j => {
      j.metadata.deletionTimestamp = now()
      j.metadata.deletionGracePeriodSeconds = 0
      j.metadata.finalizers = [...(j.metadata.finalizers ?? []), finalizer]
    }, uid) ?? job
    if (policy === 'Orphan') {
      for (const { resource, obj } of this.#dependents(namespace, uid!)) this.#dropOwner(resource, obj, uid!)
    } else {
      this.#collectDependents(namespace, uid!)
    }
    this.#finishPending()
    return marked
  }

  /** every object in the namespace with an ownerReference to `uid` (pods, Secrets, Jobs: the kinds served here) */
  #dependents (namespace: string | undefined, uid: string): Array<{ resource: Resource, obj: KObject }> {
    return DEPENDENT_KINDS.flatMap(resource => this.#store.list(resource, namespace)
      .filter(o => (o.metadata.ownerReferences ?? []).some(r => r.uid === uid))
      .map(obj => ({ resource, obj })))
  }

  /** the collector's cascade: a dependent with another owner still there only loses this reference; the rest are deleted */
  #collectDependents (namespace: string | undefined, uid: string): void {
    for (const { resource, obj } of this.#dependents(namespace, uid)) {
      const others = (obj.metadata.ownerReferences ?? []).filter(r => r.uid !== uid && this.#exists(namespace, r.uid))
      if (others.length > 0) this.#dropOwner(resource, obj, uid)
      else this.#collect(resource, obj)
    }
  }

  /** an object whose every owner is gone (or never was) is collected, as the garbage collector does on its own */
  #collectIfDangling (resource: Resource, obj: KObject): void {
    const refs = obj.metadata.ownerReferences ?? []
    if (refs.length === 0 || obj.metadata.deletionTimestamp !== undefined || refs.some(r => this.#exists(obj.metadata.namespace, r.uid))) return
    this.#collect(resource, obj)
  }

  #collect (resource: Resource, obj: KObject): void {
    if (resource === 'pods') this.deletePod(obj as Pod, undefined)
    else if (resource === 'jobs') this.#deleteJob(obj as Job, 'Background')
    else this.#store.remove(resource, obj.metadata.namespace, obj.metadata.name!, obj.metadata.uid)
  }

  #dropOwner (resource: Resource, obj: KObject, uid: string): void {
    this.#store.mutate(resource, obj.metadata.namespace, obj.metadata.name!, o => {
      const refs = (o.metadata.ownerReferences ?? []).filter(r => r.uid !== uid)
      if (refs.length === 0) delete o.metadata.ownerReferences
      else o.metadata.ownerReferences = refs
    }, obj.metadata.uid)
  }

  #exists (namespace: string | undefined, uid: string): boolean {
    return DEPENDENT_KINDS.some(resource => this.#store.list(resource, namespace).some(o => o.metadata.uid === uid))
  }

  #deleteNamespace (ns: Namespace): Namespace {
    const name = ns.metadata.name!
    if (PROTECTED_NAMESPACES.includes(name)) throw forbidden('namespaces', '', name, 'this namespace may not be deleted')
    if (ns.metadata.deletionTimestamp !== undefined) return ns
    const marked = this.#store.mutate<Namespace>('namespaces', undefined, name, n => {
      n.metadata.deletionTimestamp = now()
      n.status = { phase: 'Terminating' }
    }) ?? ns
    for (const job of this.#store.list<Job>('jobs', name)) this.#deleteJob(job, 'Background')
    for (const pod of this.#store.list<Pod>('pods', name)) this.deletePod(pod, undefined)
    for (const secret of this.#store.list('secrets', name)) this.#store.remove('secrets', name, secret.metadata.name!)
    this.#finishPending()
    return marked
  }

  /** the garbage collector's second half: Jobs whose finalizer's work is done, and emptied namespaces, go */
  #finishPending (): void {
    for (const job of this.#store.list<Job>('jobs')) {
      const finalizers = job.metadata.finalizers ?? []
      if (job.metadata.deletionTimestamp === undefined) continue
      const uid = job.metadata.uid!
      // Foreground waits only for the dependents that block their owner's deletion (a Job's pods do)
      const blocking = this.#dependents(job.metadata.namespace, uid).some(({ obj }) => (obj.metadata.ownerReferences ?? []).some(r => r.uid === uid && r.blockOwnerDeletion === true))
      if (finalizers.includes('orphan') || (finalizers.includes('foregroundDeletion') && !blocking)) this.#store.remove('jobs', job.metadata.namespace, job.metadata.name!, uid)
    }
    for (const ns of this.#store.list<Namespace>('namespaces')) {
      if (ns.status?.phase !== 'Terminating') continue
      const name = ns.metadata.name!
      if ((['pods', 'jobs', 'secrets'] as const).every(r => this.#store.list(r, name).length === 0)) this.#store.remove('namespaces', undefined, name)
    }
  }
}

/** batch/v1 Jobs default to orphaning their pods; orphanDependents (deprecated) maps onto a policy */
function policyOf (opts: DeleteOptions): 'Orphan' | 'Background' | 'Foreground' {
  if (opts.propagationPolicy !== undefined) return opts.propagationPolicy
  if (opts.orphanDependents !== undefined) return opts.orphanDependents ? 'Orphan' : 'Background'
  return 'Orphan'
}

/** what a DELETE answers when the object went at once */
function success (resource: Resource, obj: KObject): Record<string, unknown> {
  const group = RESOURCES[resource].group
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: obj.metadata.name, ...(group === '' ? {} : { group }), kind: resource, uid: obj.metadata.uid } }
}
