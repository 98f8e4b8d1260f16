import { spawn } from 'node:child_process'
import { closeSync, createWriteStream, openSync, type WriteStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { constants } from 'node:os'
import { groupMembers, pyType, signalGroup, type Resources } from './procs.ts'

export type JobStatus = 'PENDING' | 'RUNNING' | 'STOPPED' | 'SUCCEEDED' | 'FAILED'
const FINAL: ReadonlySet<JobStatus> = new Set(['STOPPED', 'SUCCEEDED', 'FAILED'])

/** Ray's messages for a status when nothing more specific is known (JobInfo.__post_init__) */
const DEFAULT_MESSAGE: Record<JobStatus, string> = {
  PENDING: 'Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available. It may be waiting for the runtime environment to be set up.',
  RUNNING: 'Job is currently running.',
  STOPPED: 'Job was intentionally stopped.',
  SUCCEEDED: 'Job finished successfully.',
  FAILED: 'Job failed.'
}
/** Ray keeps this much of the log in a failed job's message */
const FAILED_LOG_CHARS = 20_000
const DEFAULT_STOP_WAIT_S = 3
const GROUP_POLL_MS = 100

/** POST /api/jobs/ as Ray's JobSubmitRequest accepts it */
export interface SubmitRequest {
  entrypoint: string
  submission_id?: string
  runtime_env?: { env_vars?: Record<string, string>, [key: string]: unknown }
  metadata?: Record<string, string>
  entrypoint_num_cpus?: number
  entrypoint_num_gpus?: number
  entrypoint_memory?: number
  entrypoint_resources?: Record<string, number>
}

const FIELDS = new Set(['entrypoint', 'submission_id', 'job_id', 'runtime_env', 'metadata', 'entrypoint_num_cpus', 'entrypoint_num_gpus', 'entrypoint_memory', 'entrypoint_resources'])
const isDict = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v)

/** Ray's check of a submission: undefined, or the Python exception line its 400 ends with. */
export function submitError (body: unknown): string | undefined {
  if (!isDict(body)) return `TypeError: JobSubmitRequest() argument after ** must be a mapping, not ${pyType(body).slice(8, -2)}`
  const unknown = Object.keys(body).find(k => !FIELDS.has(k))
  if (unknown != null) return `TypeError: JobSubmitRequest.__init__() got an unexpected keyword argument '${unknown}'`
  const b = body
  if (typeof b.entrypoint !== 'string') return `TypeError: entrypoint must be a string, got ${pyType(b.entrypoint)}`
  if (b.submission_id != null && typeof b.submission_id !== 'string') return `TypeError: submission_id must be a string if provided, got ${pyType(b.submission_id)}`
  if (b.runtime_env != null && !isDict(b.runtime_env)) return `TypeError: runtime_env must be a dict, got ${pyType(b.runtime_env)}`
  const env = isDict(b.runtime_env) ? b.runtime_env.env_vars : undefined
  if (env != null && (!isDict(env) || !Object.values(env).every(v => typeof v === 'string'))) return `TypeError: runtime_env['env_vars'] must be of type Dict[str, str], got ${pyType(env)}`
  if (b.metadata != null && (!isDict(b.metadata) || !Object.values(b.metadata).every(v => typeof v === 'string'))) return `TypeError: metadata must be a dict of string to string, got ${pyType(b.metadata)}`
  for (const k of ['entrypoint_num_cpus', 'entrypoint_num_gpus'] as const) {
    if (b[k] != null && typeof b[k] !== 'number') return `TypeError: ${k} must be a number, got ${pyType(b[k])}`
  }
  if (b.entrypoint_memory != null && !Number.isInteger(b.entrypoint_memory)) return `TypeError: entrypoint_memory must be an integer, got ${pyType(b.entrypoint_memory)}`
  if (b.entrypoint_resources != null && (!isDict(b.entrypoint_resources) || !Object.values(b.entrypoint_resources).every(v => typeof v === 'number'))) return `TypeError: entrypoint_resources must be a dict, got ${pyType(b.entrypoint_resources)}`
  return undefined
}

/** What a job needs of the head: the entrypoint's environment, and word when its driver has ended. */
export interface JobHost {
  env: (job: FakeJob) => NodeJS.ProcessEnv
  ended: (job: FakeJob) => void
}

/**
 * One submitted job: PENDING until its entrypoint resources are free, then
 * its entrypoint runs with `sh -c` in its own process group; RUNNING, and
 * SUCCEEDED or FAILED by its exit code; `stop` is SIGTERM to the group
 * (RAY_JOB_STOP_SIGNAL may make it SIGINT), RAY_JOB_STOP_WAIT_TIME_S
 * (default 3 s) for it to exit, then SIGKILL, and STOPPED.
 */
export class FakeJob {
  readonly submissionId: string
  readonly request: SubmitRequest
  readonly logFile: string
  readonly log: WriteStream
  status: JobStatus = 'PENDING'
  /** Ray's job id: set when the driver connects (ray.init), null until then */
  jobId: string | null = null
  driverPid: number | null = null
  #pgid: number | undefined
  #message: string | undefined
  #startTime = Date.now()
  #endTime: number | null = null
  #exitCode: number | null = null
  #stopping = false
  readonly #host: JobHost

  constructor (submissionId: string, request: SubmitRequest, logFile: string, host: JobHost) {
    this.submissionId = submissionId
    this.request = request
    this.logFile = logFile
    this.log = createWriteStream(logFile, { flags: 'a' })
    this.#host = host
  }

  get final (): boolean {
    return FINAL.has(this.status)
  }

  get envVars (): Record<string, string> {
    return this.request.runtime_env?.env_vars ?? {}
  }

  /** what the entrypoint holds while it runs */
  get needs (): Resources {
    const r = this.request
    return { ...r.entrypoint_resources, CPU: r.entrypoint_num_cpus ?? 0, GPU: r.entrypoint_num_gpus ?? 0 }
  }

  start (): void {
    this.status = 'RUNNING'
    const out = openSync(this.logFile, 'a')
    const child = spawn('sh', ['-c', this.request.entrypoint], { detached: true, stdio: ['ignore', out, out], env: this.#host.env(this) })
    closeSync(out)
    this.#pgid = child.pid
    child.on('exit', (code, signal) => {
      this.#exitCode = code ?? -(signal != null ? constants.signals[signal] : 1)
      if (this.#stopping) return // stop() ends it once the whole group is gone
      // Ray's supervisor kills what the entrypoint left in its group
      if (this.#pgid != null) signalGroup(this.#pgid, 'SIGKILL')
      void this.#finishRun(code === 0)
    })
  }

  /** POST /stop: false when the job had already ended */
  stop (): boolean {
    if (this.final) return false
    if (this.status === 'PENDING' || this.#pgid == null) {
      this.#finish('STOPPED')
      return true
    }
    if (this.#stopping) return true
    this.#stopping = true
    const pgid = this.#pgid
    signalGroup(pgid, this.envVars.RAY_JOB_STOP_SIGNAL === 'SIGINT' ? 'SIGINT' : 'SIGTERM')
    const waitS = Number.parseInt(this.envVars.RAY_JOB_STOP_WAIT_TIME_S ?? '', 10)
    const until = Date.now() + (Number.isNaN(waitS) ? DEFAULT_STOP_WAIT_S : waitS) * 1000
    void (async () => {
      while ((await groupMembers(pgid)).length > 0) {
        if (Date.now() > until) signalGroup(pgid, 'SIGKILL')
        await new Promise(resolve => setTimeout(resolve, GROUP_POLL_MS))
      }
      this.#finish('STOPPED')
    })()
    return true
  }

  /** The fake head stops: nothing of the job may outlive it. */
  kill (): void {
    if (this.#pgid != null && !this.final) signalGroup(this.#pgid, 'SIGKILL')
    this.log.end()
  }

  toJSON (): Record<string, unknown> {
    const r = this.request
    return {
      type: 'SUBMISSION',
      job_id: this.jobId,
      submission_id: this.submissionId,
      driver_info: this.jobId != null ? { id: this.jobId, node_ip_address: '127.0.0.1', pid: String(this.driverPid) } : null,
      status: this.status,
      entrypoint: r.entrypoint,
      message: this.#message ?? DEFAULT_MESSAGE[this.status],
      error_type: null,
      start_time: this.#startTime,
      end_time: this.#endTime,
      metadata: r.metadata ?? {},
      runtime_env: r.runtime_env ?? {},
      driver_agent_http_address: this.status === 'PENDING' ? null : 'http://127.0.0.1:52365',
      driver_node_id: this.status === 'PENDING' ? null : 'fake0000000000000000000000000000000000000000000000000000',
      driver_exit_code: this.#exitCode,
      entrypoint_num_cpus: r.entrypoint_num_cpus ?? null,
      entrypoint_num_gpus: r.entrypoint_num_gpus ?? null,
      entrypoint_memory: r.entrypoint_memory ?? null,
      entrypoint_resources: r.entrypoint_resources ?? null
    }
  }

  async #finishRun (ok: boolean): Promise<void> {
    if (ok) return this.#finish('SUCCEEDED')
    const log = await readFile(this.logFile, 'utf8').catch(() => '')
    this.#finish('FAILED', `Job entrypoint command failed with exit code ${this.#exitCode}, last available logs (truncated to 20,000 chars):\n${log.slice(-FAILED_LOG_CHARS)}`)
  }

  #finish (status: JobStatus, message?: string): void {
    const started = this.#pgid != null
    this.status = status
    this.#message = message
    this.#endTime = Date.now()
    if (started) this.#host.ended(this)
  }
}
