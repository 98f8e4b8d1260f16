import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { ResourcePool, Resources } from './procs.ts'

export type TaskState = 'PENDING' | 'RUNNING' | 'FINISHED' | 'FAILED' | 'CANCELLED' | 'CRASHED'

export interface TaskRequest {
  job_id: string
  name: string
  /** the function and its arguments, as the fake ray module pickles them */
  payload: string
  /** the driver's Python: workers run the same one */
  python: string
  resources: Resources
}

interface Task {
  id: string
  jobId: string
  name: string
  payload: string
  python: string
  needs: Resources
  state: TaskState
  cancelled: boolean
  result?: { ok: boolean, value?: string, error?: string }
  proc?: ChildProcess
}

/** What the tasks need of the head: its resources, the job's environment and log, a nudge when resources free up. */
export interface TaskHost {
  pool: ResourcePool
  /** the environment of a job's workers; undefined once the job has ended */
  env: (jobId: string) => NodeJS.ProcessEnv | undefined
  log: (jobId: string, line: string) => void
  freed: () => void
}

export class NoSuchTask extends Error {}

/**
 * Ray tasks as the fake runs them: each in a worker process the head starts
 * (its own process group, not the driver's) once its resources are free; a
 * task asking for more than the cluster has waits forever, with Ray's
 * warning in the job's log. Workers' output goes to the job's log the way
 * Ray streams it to the driver: "(name pid=N) line".
 */
export class FakeTasks {
  readonly #host: TaskHost
  readonly #tasks = new Map<string, Task>()
  #seq = 0

  constructor (host: TaskHost) {
    this.#host = host
  }

  submit (req: TaskRequest): string {
    if (this.#host.env(req.job_id) == null) throw new NoSuchTask(`job ${req.job_id} is not running`)
    const needs = Object.fromEntries(Object.entries(req.resources).filter(([, v]) => v > 0))
    const id = `${req.job_id}${String(++this.#seq).padStart(8, '0')}`
    this.#tasks.set(id, { id, jobId: req.job_id, name: req.name, payload: req.payload, python: req.python, needs, state: 'PENDING', cancelled: false })
    if (!this.#host.pool.fits(needs, true)) {
      const asked = Object.entries(needs).map(([k, v]) => `'${k}': ${v.toFixed(1)}`).join(', ')
      this.#host.log(req.job_id, `(autoscaler +1s) Error: No available node types can fulfill resource request {${asked}}. Add suitable node types to this cluster to resolve this issue.`)
    }
    this.schedule()
    return id
  }

  schedule (): void {
    for (const task of this.#tasks.values()) {
      if (task.state === 'PENDING' && this.#host.pool.fits(task.needs)) this.#start(task)
    }
  }

  states (ids: string[]): Record<string, TaskState> {
    return Object.fromEntries(ids.map(id => [id, this.#get(id).state]))
  }

  payload (id: string): string {
    return this.#get(id).payload
  }

  result (id: string): { state: TaskState, name: string, value?: string, error?: string } {
    const t = this.#get(id)
    return { state: t.state, name: t.name, ...(t.state === 'FINISHED' ? { value: t.result?.value } : {}), ...(t.state === 'FAILED' ? { error: t.result?.error } : {}) }
  }

  /** the worker's answer; the task counts as done once its process has exited */
  posted (id: string, result: { ok: boolean, value?: string, error?: string }): void {
    this.#get(id).result = result
  }

  /** ray.cancel: a queued task is dropped, a running one gets SIGINT (KeyboardInterrupt), or SIGKILL with force */
  cancel (id: string, force: boolean): void {
    const t = this.#get(id)
    if (t.state === 'PENDING') t.state = 'CANCELLED'
    if (t.state !== 'RUNNING') return
    t.cancelled = true
    t.proc?.kill(force ? 'SIGKILL' : 'SIGINT')
  }

  /** The job's driver ended: Ray kills the job's workers (their nodes get their parent-death signal) and drops its queue. */
  jobEnded (jobId: string): void {
    for (const t of this.#tasks.values()) {
      if (t.jobId !== jobId) continue
      if (t.state === 'PENDING') t.state = 'CANCELLED'
      if (t.state === 'RUNNING') t.proc?.kill('SIGKILL')
    }
  }

  killAll (): void {
    for (const t of this.#tasks.values()) if (t.state === 'RUNNING') t.proc?.kill('SIGKILL')
  }

  /** worker pids that still run */
  workers (): number[] {
    return [...this.#tasks.values()].flatMap(t => t.state === 'RUNNING' && t.proc?.pid != null ? [t.proc.pid] : [])
  }

  #get (id: string): Task {
    const t = this.#tasks.get(id)
    if (t == null) throw new NoSuchTask(`no task ${id}`)
    return t
  }

  #start (task: Task): void {
    const env = this.#host.env(task.jobId)
    if (env == null) {
      task.state = 'CANCELLED'
      return
    }
    this.#host.pool.take(task.needs)
    task.state = 'RUNNING'
    const proc = spawn(task.python, ['-c', 'from ray._worker import main; main()'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, FAKE_RAY_TASK_ID: task.id } })
    task.proc = proc
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream }).on('line', line => { this.#host.log(task.jobId, `(${task.name} pid=${proc.pid}) ${line}`) })
    }
    const ended = (): void => {
      if (task.state !== 'RUNNING') return
      task.state = task.cancelled ? 'CANCELLED' : task.result == null ? 'CRASHED' : task.result.ok ? 'FINISHED' : 'FAILED'
      this.#host.pool.give(task.needs)
      this.#host.freed()
    }
    proc.on('exit', ended)
    proc.on('error', err => {
      this.#host.log(task.jobId, `fake ray: cannot start a worker with ${task.python}: ${err.message}`)
      ended()
    })
  }
}
