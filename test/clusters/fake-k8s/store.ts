import { randomInt, randomUUID } from 'node:crypto'
import { alreadyExists } from './errors.ts'
import { RESOURCES, type Resource } from './resources.ts'
import type { KObject } from './wire.ts'

/**
 * The fake's etcd: every object under one global resourceVersion counter,
 * frozen once stored (writers change copies), and a bounded history of
 * events so a watch can resume from a resourceVersion.
 *
 * Listeners run synchronously, in event order; a write made by a listener
 * is queued and delivered after the current event, never nested inside it.
 */
export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED'
  resource: Resource
  object: KObject
  /** the object before a MODIFIED or DELETED */
  old?: KObject
  rv: number
}

const HISTORY = 10_000
/** names generated from metadata.generateName: 5 characters from this alphabet, as apiserver's SimpleNameGenerator */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'
const MAX_GENERATE_PREFIX = 58

/** an RFC 3339 time to the second, as metav1.Time is written; `aheadMs` from now */
export const now = (aheadMs = 0): string => new Date(Date.now() + aheadMs).toISOString().replace(/\.\d+Z$/, 'Z')
const key = (namespace: string | undefined, name: string): string => `${namespace ?? ''}/${name}`

export class Store {
  #rv = 1000
  readonly #objects = new Map<Resource, Map<string, KObject>>()
  readonly #history: StoreEvent[] = []
  #compactedThrough = 0
  readonly #listeners = new Set<(event: StoreEvent) => void>()
  readonly #queue: StoreEvent[] = []
  #dispatching = false

  get resourceVersion (): string { return String(this.#rv) }

  get<T extends KObject> (resource: Resource, namespace: string | undefined, name: string): T | undefined {
    return this.#table(resource).get(key(namespace, name)) as T | undefined
  }

  /** sorted by namespace, then name: the order etcd's keys give a list */
  list<T extends KObject> (resource: Resource, namespace?: string): T[] {
    const all = [...this.#table(resource).entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, o]) => o as T)
    return namespace === undefined ? all : all.filter(o => o.metadata.namespace === namespace)
  }

  /** stores a new object under its name (see generateName), giving it a uid unless it has one, a creationTimestamp and a resourceVersion */
  create<T extends KObject> (resource: Resource, input: T): T {
    const obj = structuredClone(input)
    const name = obj.metadata.name ?? ''
    if (this.#table(resource).has(key(obj.metadata.namespace, name))) throw alreadyExists(resource, RESOURCES[resource].group, name)
    obj.metadata.uid ??= randomUUID()
    obj.metadata.creationTimestamp = now()
    return this.#write('ADDED', resource, obj)
  }

  /** a name from metadata.generateName: the prefix (cut to 58 characters) and 5 random characters, unused so far */
  generateName (resource: Resource, namespace: string | undefined, prefix: string): string {
    const base = prefix.slice(0, MAX_GENERATE_PREFIX)
    for (;;) {
      let name = base
      for (let i = 0; i < 5; i++) name += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)]
      if (!this.#table(resource).has(key(namespace, name))) return name
    }
  }

  /** writes a changed copy; returns undefined when the object is gone or the change changed nothing */
  mutate<T extends KObject> (resource: Resource, namespace: string | undefined, name: string, change: (draft: T) => void, uid?: string): T | undefined {
    const current = this.get<T>(resource, namespace, name)
    if (current === undefined || (uid !== undefined && current.metadata.uid !== uid)) return undefined
    const draft = structuredClone(current)
    change(draft)
    if (JSON.stringify(draft) === JSON.stringify(current)) return current
    return this.#write('MODIFIED', resource, draft, current)
  }

  remove<T extends KObject> (resource: Resource, namespace: string | undefined, name: string, uid?: string): T | undefined {
    const table = this.#table(resource)
    const current = table.get(key(namespace, name)) as T | undefined
    if (current === undefined || (uid !== undefined && current.metadata.uid !== uid)) return undefined
    table.delete(key(namespace, name))
    const gone = structuredClone(current)
    gone.metadata.resourceVersion = String(++this.#rv)
    this.#emit({ type: 'DELETED', resource, object: deepFreeze(gone), old: current, rv: this.#rv })
    return gone
  }

  subscribe (listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** the events after resourceVersion `rv`, or undefined when history no longer reaches back that far (410 Gone) */
  since (rv: number): StoreEvent[] | undefined {
    if (rv < this.#compactedThrough) return undefined
    return this.#history.filter(e => e.rv > rv)
  }

  #write<T extends KObject> (type: 'ADDED' | 'MODIFIED', resource: Resource, obj: T, old?: T): T {
    obj.metadata.resourceVersion = String(++this.#rv)
    const frozen = deepFreeze(obj)
    this.#table(resource).set(key(obj.metadata.namespace, obj.metadata.name ?? ''), frozen)
    this.#emit({ type, resource, object: frozen, ...(old === undefined ? {} : { old }), rv: this.#rv })
    return frozen
  }

  #emit (event: StoreEvent): void {
    this.#history.push(event)
    if (this.#history.length > HISTORY) this.#compactedThrough = this.#history.shift()!.rv
    this.#queue.push(event)
    if (this.#dispatching) return
    this.#dispatching = true
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      for (const listener of [...this.#listeners]) {
        try {
          listener(next)
        } catch (err) {
          // a bug in the fake: reported as an uncaught error (vitest fails the run) without cutting off the other listeners
          queueMicrotask(() => { throw err })
        }
      }
    }
    this.#dispatching = false
  }

  #table (resource: Resource): Map<string, KObject> {
    let table = this.#objects.get(resource)
    if (table === undefined) this.#objects.set(resource, table = new Map())
    return table
  }
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
