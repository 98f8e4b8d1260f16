import { isTerminal } from './conditions.ts'
import { NODE_NAME } from './container-env.ts'
import { PodWorker, type WorkerDeps } from './pod-worker.ts'
import type { Store, StoreEvent } from './store.ts'
import type { Pod } from './wire.ts'

/**
 * The fake node's kubelet: a PodWorker for each pod bound to the node,
 * graceful termination when a pod gets a deletionTimestamp, and a retry of
 * containers stuck on CreateContainerConfigError when a Secret in their
 * namespace changes (a real kubelet retries on its own sync period).
 */
export class Kubelet {
  readonly #store: Store
  readonly #deps: WorkerDeps
  readonly #workers = new Map<string, PodWorker>()
  #unsubscribe?: () => void

  constructor (deps: WorkerDeps) {
    this.#store = deps.store
    this.#deps = deps
  }

  start (): void {
    this.#unsubscribe = this.#store.subscribe(event => { this.#onEvent(event) })
  }

  /** the main process of a pod's container, while it runs */
  pid (namespace: string, name: string): number | undefined {
    const uid = this.#store.get<Pod>('pods', namespace, name)?.metadata.uid
    return uid === undefined ? undefined : this.#workers.get(uid)?.pid
  }

  /** SIGKILL to every pod's processes, and their directories removed */
  async stop (): Promise<void> {
    this.#unsubscribe?.()
    await Promise.all([...this.#workers.values()].map(async w => { await w.dispose() }))
    this.#workers.clear()
  }

  #onEvent (event: StoreEvent): void {
    if (event.resource === 'secrets') {
      for (const w of this.#workers.values()) {
        if (w.waitingOnConfig && w.namespace === event.object.metadata.namespace) w.run()
      }
      return
    }
    if (event.resource !== 'pods') return
    const pod = event.object as Pod
    const uid = pod.metadata.uid!
    let worker = this.#workers.get(uid)
    if (event.type === 'DELETED') {
      this.#workers.delete(uid)
      void worker?.dispose()
      return
    }
    if (pod.spec.nodeName !== NODE_NAME) return
    if (worker === undefined && !isTerminal(pod)) {
      worker = new PodWorker(this.#deps, pod)
      this.#workers.set(uid, worker)
      worker.start()
    }
    const deleting = pod.metadata.deletionTimestamp !== undefined
    if (deleting && worker !== undefined) worker.terminate(pod.metadata.deletionGracePeriodSeconds ?? 0)
    else if (deleting) this.#store.remove('pods', pod.metadata.namespace, pod.metadata.name!, uid)
  }
}
