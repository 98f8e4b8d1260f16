import { arch } from 'node:os'
import { isTerminal, setCondition } from './conditions.ts'
import { NODE_NAME } from './container-env.ts'
import { milli } from './quantity.ts'
import type { Store } from './store.ts'
import type { Pod } from './wire.ts'

/**
 * kube-scheduler for a one-node cluster: binds a pending pod to the fake
 * node when its nodeSelector matches the node's labels and its requests fit
 * what the pods bound there (and not yet finished) leave free; otherwise
 * marks it PodScheduled=False, reason Unschedulable, worded as the
 * scheduler words it, and tries again whenever a pod finishes or goes.
 */
const NODE_LABELS: Record<string, string> = {
  'kubernetes.io/hostname': NODE_NAME,
  'kubernetes.io/os': 'linux',
  'kubernetes.io/arch': arch() === 'x64' ? 'amd64' : arch()
}

export class Scheduler {
  readonly #store: Store
  readonly #allocatable: Map<string, number>
  #pending = false
  #unsubscribe?: () => void

  constructor (store: Store, capacity: Record<string, string>) {
    this.#store = store
    this.#allocatable = new Map(Object.entries(capacity).map(([k, v]) => {
      const value = milli(v)
      if (value === undefined) throw new Error(`fake-k8s: capacity ${k}: ${JSON.stringify(v)} is not a Kubernetes quantity (e.g. "8", "500m", "16Gi")`)
      return [k, value]
    }))
  }

  start (): void {
    this.#unsubscribe = this.#store.subscribe(event => { if (event.resource === 'pods') this.#kick() })
    this.#kick()
  }

  stop (): void {
    this.#unsubscribe?.()
  }

  #kick (): void {
    if (this.#pending) return
    this.#pending = true
    setImmediate(() => {
      this.#pending = false
      this.#schedulePending()
    })
  }

  #schedulePending (): void {
    const pods = this.#store.list<Pod>('pods')
    const used = new Map<string, number>()
    for (const pod of pods) {
      if (pod.spec.nodeName === NODE_NAME && !isTerminal(pod)) for (const [k, v] of requests(pod)) used.set(k, (used.get(k) ?? 0) + v)
    }
    const waiting = pods.filter(p => p.spec.nodeName === undefined && p.metadata.deletionTimestamp === undefined)
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
    for (const pod of waiting) {
      const why = this.#unfit(pod, used)
      if (why === undefined) {
        for (const [k, v] of requests(pod)) used.set(k, (used.get(k) ?? 0) + v)
        this.#store.mutate<Pod>('pods', pod.metadata.namespace, pod.metadata.name!, p => {
          p.spec.nodeName = NODE_NAME
          p.status.conditions = setCondition(p.status.conditions, { type: 'PodScheduled', status: 'True' })
        }, pod.metadata.uid)
      } else {
        this.#store.mutate<Pod>('pods', pod.metadata.namespace, pod.metadata.name!, p => {
          p.status.conditions = setCondition(p.status.conditions, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: `0/1 nodes are available: ${why}.` })
        }, pod.metadata.uid)
      }
    }
  }

  /** why the node cannot take the pod ("1 Insufficient cpu, 1 Insufficient nvidia.com/gpu"), or undefined when it can */
  #unfit (pod: Pod, used: Map<string, number>): string | undefined {
    const selector = (pod.spec as { nodeSelector?: Record<string, string> }).nodeSelector ?? {}
    if (Object.entries(selector).some(([k, v]) => NODE_LABELS[k] !== v)) return "1 node(s) didn't match Pod's node affinity/selector"
    const short: string[] = []
    for (const [k, v] of requests(pod)) {
      if (v > 0 && (used.get(k) ?? 0) + v > (this.#allocatable.get(k) ?? 0)) short.push(`1 Insufficient ${k}`)
    }
    return short.length === 0 ? undefined : short.sort().join(', ')
  }
}

/** the pod's summed container requests, in thousandths */
function requests (pod: Pod): Map<string, number> {
  const sum = new Map<string, number>()
  for (const c of pod.spec.containers) {
    for (const [k, q] of Object.entries(c.resources?.requests ?? {})) sum.set(k, (sum.get(k) ?? 0) + (milli(q) ?? 0))
  }
  return sum
}
