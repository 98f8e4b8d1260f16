import { z } from 'zod'
import { deadline, isTimeout } from '../../protocols/common/signals.ts'

/**
 * The Ray bridge's client port: the Jobs REST API of a Ray head's dashboard
 * (http://HEAD:8265), one fetch per call, each with a timeout. Ray answers
 * failures as text/plain (often a Python traceback) with 400, 404 or 500;
 * they become a RayError that says what failed, quotes Ray, and names the fix.
 */
const DEFAULT_TIMEOUT_MS = 15_000
/** how much of Ray's text goes into an error message */
const QUOTE_CHARS = 500

export type RayErrorCode =
  /** nothing answers at the address */
  | 'unreachable'
  /** the dashboard did not answer within the client's timeout */
  | 'timeout'
  /** the address answers, but not with Ray's Jobs API */
  | 'no-api'
  /** Ray does not know the job (404) */
  | 'not-found'
  /** the submission id is taken by another job (400) */
  | 'duplicate'
  /** Ray refused the request otherwise (400) */
  | 'rejected'
  /** the dashboard failed (500) */
  | 'server'

export class RayError extends Error {
  override name = 'RayError'
  readonly code: RayErrorCode
  /** the HTTP status Ray answered, where it answered */
  readonly status: number | undefined

  constructor (code: RayErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options)
    this.code = code
    this.status = options?.status
  }
}

export const RAY_JOB_STATES = ['PENDING', 'RUNNING', 'STOPPED', 'SUCCEEDED', 'FAILED'] as const
export type RayJobStatus = typeof RAY_JOB_STATES[number]
export const FINAL_RAY_STATES: ReadonlySet<RayJobStatus> = new Set(['STOPPED', 'SUCCEEDED', 'FAILED'])

/** The part of Ray's JobDetails the bridge reads (GET /api/jobs/{id}); Ray sends more. */
const JobInfoSchema = z.object({
  submission_id: z.string().nullish(),
  job_id: z.string().nullish(),
  status: z.enum(RAY_JOB_STATES),
  entrypoint: z.string().nullish(),
  message: z.string().nullish(),
  start_time: z.number().nullish(),
  end_time: z.number().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  runtime_env: z.object({ env_vars: z.record(z.string(), z.string()).nullish() }).nullish(),
  driver_exit_code: z.number().nullish()
}).transform((j): RayJobInfo => ({
  submissionId: j.submission_id ?? undefined,
  jobId: j.job_id ?? undefined,
  status: j.status,
  message: j.message ?? undefined,
  startTime: j.start_time ?? undefined,
  endTime: j.end_time ?? undefined,
  metadata: j.metadata ?? {},
  envVars: j.runtime_env?.env_vars ?? {},
  driverExitCode: j.driver_exit_code ?? undefined
}))

export interface RayJobInfo {
  submissionId?: string | undefined
  /** Ray's job id: set once the driver connects (ray.init) */
  jobId?: string | undefined
  status: RayJobStatus
  /** Ray's words on the status; for a failed job, the cause and the log's tail */
  message?: string | undefined
  /** Unix ms */
  startTime?: number | undefined
  endTime?: number | undefined
  metadata: Record<string, string>
  /** the job's runtime_env env_vars */
  envVars: Record<string, string>
  driverExitCode?: number | undefined
}

const SubmitResponseSchema = z.object({ submission_id: z.string(), job_id: z.string().nullish() })
const StopResponseSchema = z.object({ stopped: z.boolean() })
const LogsResponseSchema = z.object({ logs: z.string() })
const VersionSchema = z.object({ version: z.string(), ray_version: z.string(), ray_commit: z.string().nullish() })
  .transform(v => ({ version: v.version, rayVersion: v.ray_version }))

/** The body of POST /api/jobs/, in Ray's own field names. */
export interface RaySubmitRequest {
  /** a shell command, run on the head (or where the entrypoint resources are) */
  entrypoint: string
  submission_id?: string
  runtime_env?: { env_vars?: Record<string, string>, [key: string]: unknown }
  metadata?: Record<string, string>
  entrypoint_num_cpus?: number
  entrypoint_num_gpus?: number
  entrypoint_memory?: number
  entrypoint_resources?: Record<string, number>
}

export interface RayJobsClientOptions {
  /** the dashboard: http://HEAD:8265 */
  address: string
  /** per call (default 15 s) */
  timeoutMs?: number
}

export class RayJobsClient {
  readonly address: string
  readonly #timeoutMs: number

  constructor (opts: RayJobsClientOptions) {
    this.address = opts.address.replace(/\/+$/, '')
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  }

  async version (signal?: AbortSignal): Promise<z.infer<typeof VersionSchema>> {
    return await this.#call('GET', '/api/version', undefined, VersionSchema, { what: 'asking for its version' }, signal)
  }

  /** Submits a job; Ray starts it when the entrypoint's resources are free. */
  async submit (req: RaySubmitRequest, signal?: AbortSignal): Promise<{ submissionId: string }> {
    const what = `submitting job ${req.submission_id ?? ''}`.trim()
    const r = await this.#call('POST', '/api/jobs/', req, SubmitResponseSchema, { what, submissionId: req.submission_id }, signal)
    return { submissionId: r.submission_id }
  }

  async info (id: string, signal?: AbortSignal): Promise<RayJobInfo> {
    return await this.#call('GET', `/api/jobs/${encodeURIComponent(id)}`, undefined, JobInfoSchema, { what: `asking for job ${id}`, job: id }, signal)
  }

  /** The driver's output so far (GET /logs; Ray keeps all of it). */
  async logs (id: string, signal?: AbortSignal): Promise<string> {
    return (await this.#call('GET', `/api/jobs/${encodeURIComponent(id)}/logs`, undefined, LogsResponseSchema, { what: `reading the logs of job ${id}`, job: id }, signal)).logs
  }

  /** Asks Ray to stop the job (SIGTERM to its driver, SIGKILL after RAY_JOB_STOP_WAIT_TIME_S); false when it had already ended. */
  async stop (id: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.#call('POST', `/api/jobs/${encodeURIComponent(id)}/stop`, undefined, StopResponseSchema, { what: `stopping job ${id}`, job: id }, signal)).stopped
  }

  async #call<T> (method: string, path: string, body: unknown, schema: z.ZodType<T>, ctx: ErrorContext, signal?: AbortSignal): Promise<T> {
    const d = deadline(this.#timeoutMs, signal)
    const url = this.address + path
    let status: number
    let text: string
    try {
      const res = await fetch(url, {
        method,
        signal: d.signal,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {})
      })
      status = res.status
      text = await res.text()
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      if (d.signal.aborted && isTimeout(d.signal.reason)) {
        throw new RayError('timeout', `the Ray dashboard at ${this.address} did not answer ${ctx.what} within ${this.#timeoutMs} ms: is the head overloaded? retry, or run 'ray status' on the head`, { cause: err })
      }
      const cause = (err as { cause?: { code?: string, message?: string } }).cause
      throw new RayError('unreachable', `cannot reach the Ray dashboard at ${this.address} while ${ctx.what} (${cause?.code ?? cause?.message ?? (err as Error).message}): check --address and that the head's dashboard listens there (port 8265 by default; 'ray start --head --dashboard-host 0.0.0.0' to reach it from other machines)`, { cause: err })
    } finally {
      d.clear()
    }
    if (status !== 200) throw rayFailure(this.address, status, text, ctx)
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    const parsed = schema.safeParse(json)
    if (!parsed.success) {
      throw new RayError('no-api', `${this.address} answered ${ctx.what} with ${quote(text)}, not the Ray Jobs API's JSON: check that --address names the Ray dashboard (http://HEAD:8265), not the GCS (6379) or the Ray client port (10001)`, { status })
    }
    return parsed.data
  }
}

interface ErrorContext {
  /** what the call was doing, for the message: "stopping job zp-ray-3f9a2c" */
  what: string
  /** the job the call was about, if any (a 404 then means the job is gone, not a wrong address) */
  job?: string
  submissionId?: string
}

/** Ray's text/plain failure as a RayError: what failed, Ray's words, the fix. Pure, for tests. */
export function rayFailure (address: string, status: number, text: string, ctx: ErrorContext): RayError {
  const said = `Ray said: ${quote(text)}`
  if (status === 404 && ctx.job != null) {
    return new RayError('not-found', `Ray at ${address} has no job ${ctx.job} (${ctx.what}: 404, ${said}): the job is gone (deleted, or the head restarted and lost it); nothing of it runs there any more`, { status })
  }
  if (status === 404) {
    return new RayError('no-api', `${address} has no Ray Jobs API (${ctx.what}: 404, ${said}): check that --address names the Ray dashboard (http://HEAD:8265) of Ray 2.x`, { status })
  }
  if (status === 400 && /already exists/i.test(text)) {
    const id = ctx.submissionId != null ? `the submission id ${ctx.submissionId}` : 'its submission id'
    return new RayError('duplicate', `Ray refused ${ctx.what}: ${id} is already taken on ${address} (400, ${said}); another job uses it: submit again (zp picks a new id each time), or 'ray job delete' the old job if it is yours`, { status })
  }
  if (status === 400) {
    return new RayError('rejected', `Ray refused ${ctx.what} (400, ${said}): this zp may not match the head's Ray version; GET ${address}/api/version shows it`, { status })
  }
  if (status >= 500) {
    return new RayError('server', `the Ray dashboard at ${address} failed ${ctx.what} (${status}, ${said}): an error inside the head; its dashboard.log (/tmp/ray/session_latest/logs on the head) says more; retry once it is healthy`, { status })
  }
  return new RayError('no-api', `${address} answered ${ctx.what} with HTTP ${status} (${said}): check that --address names the Ray dashboard (http://HEAD:8265)`, { status })
}

/**
 * Ray's words, on one line: the exception line of a Python traceback (what
 * Ray sends for 400 and 500), else the text itself, cut to QUOTE_CHARS.
 */
export function quote (text: string): string {
  const lines = text.trim().split('\n').map(l => l.trim()).filter(l => l !== '')
  const said = lines[0]?.startsWith('Traceback (most recent call last)') === true ? lines.at(-1)! : lines.join(' ')
  if (said === '') return '(an empty body)'
  return `"${said.length > QUOTE_CHARS ? said.slice(0, QUOTE_CHARS) + '…' : said}"`
}
