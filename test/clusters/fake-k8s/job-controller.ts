import { hasCondition, isTerminal, setCondition } from './conditions.ts'
import { ApiError } from './errors.ts'
import { controllerOf, podForJob } from './job-pods.ts'
import { backoffMs, formatIntervals, indexOf, matchPodFailurePolicy, parseIntervals } from './job-rules.ts'
import { now, type Store, type StoreEvent } from './store.ts'
import type { Job, JobStatus, Pod } from './wire.ts'

/**
 * The batch/v1 Job controller: keeps `parallelism` pods running until
 * `completions` succeed (each index once, for an Indexed Job), counts
 * failures against backoffLimit or backoffLimitPerIndex after the
 * podFailurePolicy had its say, enforces activeDeadlineSeconds, and writes
 * status: SuccessCriteriaMet then Complete, or FailureTarget then Failed
 * once the Job's remaining pods have stopped.
 *
 * What it has counted lives here rather than in pod finalizers
 * (batch.kubernetes.io/job-tracking): a pod deleted before it was counted
 * is kept as a tombstone until the next sync counts it.
 */
export interface JobControllerDeps {
  store: Store
  /** creates a pod through the API's create path (defaults, validation) */
  createPod: (pod: Pod) => void
  /** deletes a pod the controller no longer wants (no disruption condition) */
  deletePod: (pod: Pod) => void
  /** ttlSecondsAfterFinished: the TTL controller's Background delete */
  deleteJob: (job: Job) => void
}

interface Tracking {
  counted: Set<string>
  tombstones: Map<string, Pod>
  /** counted (not ignored) failures per index, and ignored ones, for backoffLimitPerIndex and the pod annotations */
  indexFailures: Map<number, number>
  indexIgnored: Map<number, number>
  /** back-off: failures since the last success, and when the last one was counted; per index with backoffLimitPerIndex */
  backoff: Map<number | 'job', { failures: number, at: number }>
  timer?: ReturnType<typeof setTimeout>
  timerAt?: number
  ttlTimer?: ReturnType<typeof setTimeout>
}

const COMPLETE_MESSAGE = 'Reached expected number of succeeded pods'
const CREATE_RETRY_MS = 1_000

export class JobController {
  readonly #deps: JobControllerDeps
  readonly #store: Store
  readonly #tracking = new Map<string, Tracking>()
  readonly #queue = new Set<string>()
  #scheduled = false
  #stopped = false
  #unsubscribe?: () => void

  constructor (deps: JobControllerDeps) {
    this.#deps = deps
    this.#store = deps.store
  }

  start (): void {
    this.#unsubscribe = this.#store.subscribe(event => { this.#onEvent(event) })
  }

  stop (): void {
    this.#stopped = true
    this.#unsubscribe?.()
    for (const uid of [...this.#tracking.keys()]) this.#forget(uid)
  }

  #forget (uid: string): void {
    const t = this.#tracking.get(uid)
    clearTimeout(t?.timer)
    clearTimeout(t?.ttlTimer)
    this.#tracking.delete(uid)
  }

  #onEvent (event: StoreEvent): void {
    if (event.resource === 'jobs') {
      const { namespace, name, uid } = event.object.metadata
      if (event.type === 'DELETED') {
        this.#forget(uid!)
      } else {
        this.#enqueue(`${namespace}/${name}`)
      }
    } else if (event.resource === 'pods') {
      const pod = event.object as Pod
      const owner = controllerOf(pod) ?? (event.old === undefined ? undefined : controllerOf(event.old as Pod))
      if (owner === undefined) return
      const t = this.#tracking.get(owner.uid)
      if (event.type === 'DELETED' && t !== undefined && !t.counted.has(pod.metadata.uid!)) t.tombstones.set(pod.metadata.uid!, pod)
      this.#enqueue(`${pod.metadata.namespace}/${owner.name}`)
    }
  }

  #enqueue (key: string): void {
    this.#queue.add(key)
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      const keys = [...this.#queue]
      this.#queue.clear()
      for (const k of keys) if (!this.#stopped) this.#sync(k)
    })
  }

  #sync (key: string): void {
    const [namespace = '', name = ''] = key.split('/')
    const job = this.#store.get<Job>('jobs', namespace, name)
    if (job === undefined) return
    const uid = job.metadata.uid!
    let t = this.#tracking.get(uid)
    if (t === undefined) this.#tracking.set(uid, t = { counted: new Set(), tombstones: new Map(), indexFailures: new Map(), indexIgnored: new Map(), backoff: new Map() })
    const status: JobStatus = structuredClone(job.status)
    if (hasCondition(status.conditions, 'Complete') || hasCondition(status.conditions, 'Failed')) {
      this.#expireAfterFinish(job, t)
      return
    }
    const spec = job.spec
    const indexed = spec.completionMode === 'Indexed'
    const perIndex = spec.backoffLimitPerIndex !== undefined
    const owned = (): Pod[] => this.#store.list<Pod>('pods', namespace).filter(p => controllerOf(p)?.uid === uid)
    const completed = parseIntervals(status.completedIndexes)
    const failedIndexes = parseIntervals(status.failedIndexes)
    let succeeded = status.succeeded ?? 0
    let failed = status.failed ?? 0
    const failure = status.conditions?.find(c => c.type === 'FailureTarget' && c.status === 'True')
    let failureTarget = failure === undefined ? undefined : { reason: failure.reason ?? '', message: failure.message ?? '' }
    status.startTime ??= now()

    // account for pods that finished (or went) since the last sync
    for (const pod of [...owned(), ...t.tombstones.values()]) {
      const podUid = pod.metadata.uid!
      if (t.counted.has(podUid)) continue
      const gone = t.tombstones.has(podUid)
      const index = indexed ? indexOf(pod, spec.completions) : undefined
      const backoffKey = perIndex && index !== undefined ? index : 'job'
      if (pod.status.phase === 'Succeeded') {
        if (!indexed) succeeded++
        else if (index !== undefined && !failedIndexes.has(index)) completed.add(index)
        t.backoff.delete(backoffKey)
      } else if (isTerminal(pod) || gone || (pod.metadata.deletionTimestamp !== undefined && spec.podFailurePolicy === undefined)) {
        // without a podFailurePolicy a terminating pod counts as failed at once; with one, the controller waits for its phase
        const match = spec.podFailurePolicy === undefined ? undefined : matchPodFailurePolicy(job, pod)
        const action = match?.action ?? 'Count'
        if (action === 'Ignore') {
          if (index !== undefined) t.indexIgnored.set(index, (t.indexIgnored.get(index) ?? 0) + 1)
        } else {
          failed++
          if (action === 'FailJob') failureTarget ??= { reason: 'PodFailurePolicy', message: match!.message }
          if (action === 'FailIndex' && index !== undefined) failedIndexes.add(index)
          if (action === 'Count') {
            const b = t.backoff.get(backoffKey)
            t.backoff.set(backoffKey, { failures: (b?.failures ?? 0) + 1, at: Date.now() })
            if (perIndex && index !== undefined) {
              const n = (t.indexFailures.get(index) ?? 0) + 1
              t.indexFailures.set(index, n)
              if (n > spec.backoffLimitPerIndex!) failedIndexes.add(index)
            }
          }
        }
      } else {
        continue
      }
      t.counted.add(podUid)
      t.tombstones.delete(podUid)
    }
    if (indexed) succeeded = completed.size

    const running = (): Pod[] => owned().filter(p => !isTerminal(p) && p.metadata.deletionTimestamp === undefined)
    let successMet = hasCondition(status.conditions, 'SuccessCriteriaMet')
    if (failureTarget === undefined && !successMet) {
      const restarts = spec.template.spec.restartPolicy === 'OnFailure' ? running().reduce((n, p) => n + (p.status.containerStatuses?.[0]?.restartCount ?? 0), 0) : 0
      const deadline = spec.activeDeadlineSeconds === undefined ? Infinity : Date.parse(status.startTime) + spec.activeDeadlineSeconds * 1000
      if (Date.now() >= deadline) failureTarget = { reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }
      else if (failed + restarts > spec.backoffLimit!) failureTarget = { reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }
      else if (perIndex && spec.maxFailedIndexes !== undefined && failedIndexes.size > spec.maxFailedIndexes) failureTarget = { reason: 'MaxFailedIndexesExceeded', message: 'Job has exceeded the specified maximal number of failed indexes' }
      else if (perIndex && failedIndexes.size > 0 && completed.size + failedIndexes.size >= spec.completions!) failureTarget = { reason: 'FailedIndexes', message: 'Job has failed indexes' }
      else if (deadline !== Infinity) this.#wakeAt(t, key, deadline)
    }
    if (failureTarget === undefined && !successMet) {
      successMet = indexed ? completed.size >= spec.completions! : spec.completions !== undefined ? succeeded >= spec.completions : succeeded > 0 && running().length === 0
      if (successMet) status.conditions = setCondition(status.conditions, { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', message: COMPLETE_MESSAGE }, 'job')
    }
    if (failureTarget !== undefined && failure === undefined) status.conditions = setCondition(status.conditions, { type: 'FailureTarget', status: 'True', ...failureTarget }, 'job')

    if (failureTarget !== undefined || successMet) {
      for (const pod of running()) this.#deps.deletePod(pod)
    } else if (job.metadata.deletionTimestamp === undefined) {
      this.#createPods(job, t, key, { completed, failedIndexes, succeeded })
    }

    const pods = owned().filter(p => !isTerminal(p))
    const active = pods.filter(p => p.metadata.deletionTimestamp === undefined)
    const finishing = (failureTarget !== undefined || successMet) && pods.length === 0
    if (finishing && failureTarget !== undefined) status.conditions = setCondition(status.conditions, { type: 'Failed', status: 'True', ...failureTarget }, 'job')
    if (finishing && failureTarget === undefined) {
      status.conditions = setCondition(status.conditions, { type: 'Complete', status: 'True', reason: 'CompletionsReached', message: COMPLETE_MESSAGE }, 'job')
      status.completionTime = now()
    }
    writeCounts(status, { active: active.length, ready: active.filter(p => hasCondition(p.status.conditions, 'Ready')).length, terminating: pods.length - active.length, succeeded, failed })
    if (indexed) {
      if (completed.size > 0) status.completedIndexes = formatIntervals(completed)
      if (perIndex) status.failedIndexes = formatIntervals(failedIndexes)
    }
    status.uncountedTerminatedPods = {}
    const written = this.#store.mutate<Job>('jobs', namespace, name, j => { j.status = status }, uid)
    if (finishing && written !== undefined) this.#expireAfterFinish(written, t)
  }

  #createPods (job: Job, t: Tracking, key: string, state: { completed: Set<number>, failedIndexes: Set<number>, succeeded: number }): void {
    const spec = job.spec
    const pods = this.#store.list<Pod>('pods', job.metadata.namespace).filter(p => controllerOf(p)?.uid === job.metadata.uid && !isTerminal(p))
    // TerminatingOrFailed replaces a terminating pod at once; Failed waits for it to have failed
    const holding = pods.filter(p => p.metadata.deletionTimestamp === undefined || spec.podReplacementPolicy === 'Failed')
    let slots = spec.parallelism! - holding.length
    const ready = (backoffKey: number | 'job'): boolean => {
      const b = t.backoff.get(backoffKey)
      const at = b === undefined ? 0 : b.at + backoffMs(b.failures)
      if (at > Date.now()) this.#wakeAt(t, key, at)
      return at <= Date.now()
    }
    if (spec.completionMode !== 'Indexed') {
      const want = spec.completions !== undefined ? Math.min(spec.parallelism!, spec.completions - state.succeeded) : state.succeeded > 0 ? 0 : spec.parallelism!
      for (slots = want - holding.length; slots > 0 && ready('job'); slots--) {
        if (!this.#create(podForJob(job, undefined, { counted: 0, ignored: 0 }), t, key)) return
      }
      return
    }
    const busy = new Set(holding.map(p => indexOf(p, spec.completions)))
    const perIndex = spec.backoffLimitPerIndex !== undefined
    for (let i = 0; i < spec.completions! && slots > 0; i++) {
      if (state.completed.has(i) || state.failedIndexes.has(i) || busy.has(i) || !ready(perIndex ? i : 'job')) continue
      if (!this.#create(podForJob(job, i, { counted: t.indexFailures.get(i) ?? 0, ignored: t.indexIgnored.get(i) ?? 0 }), t, key)) return
      slots--
    }
  }

  /** a create the API refuses (the namespace is terminating, …) is tried again later, as the controller retries a FailedCreate */
  #create (pod: Pod, t: Tracking, key: string): boolean {
    try {
      this.#deps.createPod(pod)
      return true
    } catch (err) {
      if (!(err instanceof ApiError)) throw err
      this.#wakeAt(t, key, Date.now() + CREATE_RETRY_MS)
      return false
    }
  }

  /** ttlSecondsAfterFinished: the Job (and, Background, its pods) goes that long after it finished */
  #expireAfterFinish (job: Job, t: Tracking): void {
    const ttl = job.spec.ttlSecondsAfterFinished
    if (ttl === undefined || t.ttlTimer !== undefined) return
    const finished = job.status.conditions?.find(c => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True')
    const at = Date.parse(finished?.lastTransitionTime ?? '') + ttl * 1000
    t.ttlTimer = setTimeout(() => { if (!this.#stopped) this.#deps.deleteJob(job) }, Math.max(0, at - Date.now()))
  }

  #wakeAt (t: Tracking, key: string, at: number): void {
    if (t.timerAt !== undefined && t.timerAt <= at && t.timerAt > Date.now()) return
    clearTimeout(t.timer)
    t.timerAt = at
    t.timer = setTimeout(() => {
      t.timer = undefined
      t.timerAt = undefined
      this.#enqueue(key)
    }, Math.max(0, at - Date.now()) + 5)
  }
}

/** active/succeeded/failed are omitted at 0 (omitempty); ready and terminating are pointers, so 0 is written */
function writeCounts (status: JobStatus, counts: { active: number, ready: number, terminating: number, succeeded: number, failed: number }): void {
  for (const field of ['active', 'succeeded', 'failed'] as const) {
    if (counts[field] > 0) status[field] = counts[field]
    else delete status[field]
  }
  status.ready = counts.ready
  status.terminating = counts.terminating
}
