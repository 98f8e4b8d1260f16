import { randomUUID } from 'node:crypto'
import { defaultJob, defaultNamespace, defaultPod, defaultSecret, labelJobFromTemplate } from './defaults.ts'
import type { Deleter, Disruption } from './deletion.ts'
import { badRequest, conflict, failure, forbidden, invalid, notFound, qualified } from './errors.ts'
import { apiVersionOf, RESOURCES, type Resource } from './resources.ts'
import { selectorsFrom } from './selectors.ts'
import { decode, SHAPES } from './shape.ts'
import type { Store } from './store.ts'
import { validate } from './validate.ts'
import type { DeleteOptions, Job, KObject, Namespace, Pod, Secret } from './wire.ts'

/**
 * The REST verbs on stored objects: create (decode, defaults, validation,
 * admission), get, list (selectors, limit/continue), replace (Secrets),
 * delete and deletecollection, and the pod eviction subresource.
 */
const SYSTEM_FIELDS = ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'managedFields', 'selfLink'] as const

const EVICTION_DISRUPTION: Disruption = { reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' }

export class Api {
  readonly #store: Store
  readonly #deleter: Deleter

  constructor (store: Store, deleter: Deleter) {
    this.#store = store
    this.#deleter = deleter
  }

  /** POST: the whole admission path; also how the Job controller creates its pods */
  create<T extends KObject> (resource: Resource, namespace: string | undefined, input: unknown): T {
    const info = RESOURCES[resource]
    const body = structuredClone(input)
    decode(info.kind as keyof typeof SHAPES, body)
    const obj = body as T
    checkTypeMeta(resource, obj)
    obj.metadata ??= {}
    if (info.namespaced) {
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
      obj.metadata.namespace = namespace
    } else {
      delete obj.metadata.namespace
    }
    for (const field of SYSTEM_FIELDS) delete (obj.metadata as Record<string, unknown>)[field]
    if ((obj.metadata.name ?? '') === '' && (obj.metadata.generateName ?? '') !== '') obj.metadata.name = this.#store.generateName(resource, namespace, obj.metadata.generateName!)
    if (info.namespaced) this.#admitNamespace(resource, namespace!, obj.metadata.name ?? '')
    obj.metadata.uid = randomUUID()
    obj.apiVersion = apiVersionOf(resource)
    obj.kind = info.kind
    if (resource === 'pods') defaultPod(obj as unknown as Pod)
    if (resource === 'jobs') defaultJob(obj as unknown as Job)
    if (resource === 'secrets') defaultSecret(obj as Secret)
    if (resource === 'namespaces') defaultNamespace(obj as Namespace)
    validate(resource, obj)
    if (resource === 'jobs') labelJobFromTemplate(obj as unknown as Job)
    return this.#store.create(resource, { apiVersion: obj.apiVersion, kind: obj.kind, ...obj })
  }

  get (resource: Resource, namespace: string | undefined, name: string): KObject {
    const obj = this.#store.get(resource, namespace, name)
    if (obj === undefined) throw notFound(resource, RESOURCES[resource].group, name)
    return obj
  }

  list (resource: Resource, namespace: string | undefined, query: URLSearchParams): Record<string, unknown> {
    const match = selectorsFrom(resource, query)
    let items = this.#store.list(resource, namespace).filter(match)
    const after = query.get('continue')
    if (after !== null && after !== '') {
      const last = Buffer.from(after, 'base64url').toString('utf8')
      items = items.filter(o => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > last)
    }
    const limit = Number(query.get('limit') ?? 0)
    const metadata: Record<string, unknown> = { resourceVersion: this.#store.resourceVersion }
    if (limit > 0 && items.length > limit) {
      const lastItem = items[limit - 1]!
      metadata.continue = Buffer.from(`${lastItem.metadata.namespace ?? ''}/${lastItem.metadata.name}`).toString('base64url')
      metadata.remainingItemCount = items.length - limit
      items = items.slice(0, limit)
    }
    // items of a typed list carry no kind/apiVersion of their own
    return { kind: `${RESOURCES[resource].kind}List`, apiVersion: apiVersionOf(resource), metadata, items: items.map(withoutTypeMeta) }
  }

  /** PUT, for Secrets: the whole object replaced, under an optimistic resourceVersion check */
  replace (resource: Resource, namespace: string | undefined, name: string, body: unknown): KObject {
    if (resource !== 'secrets') throw notImplemented('PUT', resource)
    decode('Secret', body)
    const next = body as Secret
    checkTypeMeta(resource, next)
    next.metadata ??= {}
    if (next.metadata.name !== name) throw badRequest(`the name of the object (${next.metadata.name ?? ''}) does not match the name on the URL (${name})`)
    if (next.metadata.namespace !== undefined && next.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
    const current = this.get(resource, namespace, name) as Secret
    const rv = next.metadata.resourceVersion
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion) throw conflict(resource, '', name, 'the object has been modified; please apply your changes to the latest version and try again')
    if ((current as { immutable?: boolean }).immutable === true && JSON.stringify(current.data ?? {}) !== JSON.stringify(next.data ?? {})) {
      throw invalid('Secret', '', name, [{ reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' }])
    }
    defaultSecret(next)
    const merged = { ...next, apiVersion: 'v1', kind: 'Secret', metadata: { ...next.metadata, namespace, uid: current.metadata.uid, creationTimestamp: current.metadata.creationTimestamp } }
    validate(resource, merged)
    return this.#store.mutate<Secret>(resource, namespace, name, s => {
      for (const k of Object.keys(s)) delete (s as unknown as Record<string, unknown>)[k]
      Object.assign(s, structuredClone(merged))
    })!
  }

  delete (resource: Resource, namespace: string | undefined, name: string, opts: DeleteOptions): KObject | Record<string, unknown> {
    // as a real server: a plain DELETE adds no DisruptionTarget (only eviction, preemption, taint-based and PodGC deletion do)
    return this.#deleter.delete(resource, namespace, name, opts, undefined)
  }

  deleteCollection (resource: Resource, namespace: string | undefined, query: URLSearchParams, opts: DeleteOptions): Record<string, unknown> {
    if (resource === 'namespaces') throw notImplemented('DELETE (deletecollection)', resource)
    const match = selectorsFrom(resource, query)
    const deleted = this.#store.list(resource, namespace).filter(match)
      .map(o => this.delete(resource, o.metadata.namespace, o.metadata.name!, opts))
      .filter(o => o.kind !== 'Status')
    return { kind: `${RESOURCES[resource].kind}List`, apiVersion: apiVersionOf(resource), metadata: { resourceVersion: this.#store.resourceVersion }, items: deleted }
  }

  /** POST pods/{name}/eviction: no PodDisruptionBudgets here, so every eviction is allowed */
  evict (namespace: string, name: string, body: unknown): Record<string, unknown> {
    decode('Eviction', body)
    const eviction = body as { metadata?: { name?: string }, deleteOptions?: DeleteOptions }
    if (eviction.metadata?.name !== undefined && eviction.metadata.name !== name) throw badRequest(`name in URL does not match name in Eviction object`)
    const pod = this.get('pods', namespace, name) as Pod
    this.#deleter.deletePod(pod, eviction.deleteOptions?.gracePeriodSeconds, EVICTION_DISRUPTION)
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 }
  }

  /** the NamespaceLifecycle admission plugin */
  #admitNamespace (resource: Resource, namespace: string, name: string): void {
    const ns = this.#store.get<Namespace>('namespaces', undefined, namespace)
    if (ns === undefined) throw notFound('namespaces', '', namespace)
    if (ns.status?.phase === 'Terminating') throw forbidden(resource, RESOURCES[resource].group, name, `unable to create new content in namespace ${namespace} because it is being terminated`)
  }
}

function checkTypeMeta (resource: Resource, obj: KObject): void {
  const expected = apiVersionOf(resource)
  const kind = RESOURCES[resource].kind
  if (obj.kind !== undefined && obj.kind !== '' && obj.kind !== kind) throw badRequest(`the object provided is unrecognized (must be of type ${kind}): ${obj.kind} is not ${kind}`)
  if (obj.apiVersion !== undefined && obj.apiVersion !== '' && obj.apiVersion !== expected) throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${expected})`)
}

export function notImplemented (verb: string, resource: Resource): Error {
  return failure(405, `fake-k8s does not implement ${verb} for ${qualified(resource, RESOURCES[resource].group)} (a real API server does); it implements ${RESOURCES[resource].verbs.join(', ')}`)
}

function withoutTypeMeta (obj: KObject): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...obj }
  delete copy.kind
  delete copy.apiVersion
  return copy
}
