import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readFile } from 'node:fs/promises'
import { tempDir } from '../../helpers.ts'
import { FakeJob, submitError, type SubmitRequest } from './jobs.ts'
import { ResourcePool, traceback, type Resources } from './procs.ts'
import { FakeTasks, NoSuchTask, type TaskRequest } from './tasks.ts'

/** the fake `ray` Python package, put first on PYTHONPATH of entrypoints and workers */
export const FAKE_RAY_PYTHONPATH = fileURLToPath(new URL('./python', import.meta.url))

/**
 * Why the fake cannot run launchers here, or undefined: the bridge's
 * entrypoint is `python3 -c …`, so a python3 on PATH must start (the fake
 * `ray` module needs the standard library only).
 */
export async function fakeRaySkip (): Promise<string | undefined> {
  return await new Promise(resolve => {
    execFile('python3', ['-c', 'import ctypes, json, marshal, pickle, urllib.request'], { timeout: 30_000 }, err => {
      resolve(err == null ? undefined : `skipped: no python3 on PATH runs here (${err.message.split('\n')[0]}); the fake Ray head runs the launcher with it`)
    })
  })
}

/** the dashboard's routes a test can make fail once */
export type FakeRoute = 'version' | 'submit' | 'list' | 'info' | 'logs' | 'stop' | 'delete'

export interface FakeRayOptions {
  /** the fake cluster's CPUs (default 4), GPUs (default 0) and custom resources, shared by entrypoints and tasks */
  cpus?: number
  gpus?: number
  resources?: Resources
  /** TMPDIR of every process the fake starts (where the launcher's scratch dirs go) */
  tmpDir?: string
}

export interface FakeRay {
  /** the dashboard, http://127.0.0.1:PORT (the Jobs REST API) */
  address: string
  /** the next request to `route` answers `status` with `text` as text/plain (default: a 500 with a traceback) */
  failNext: (route: FakeRoute, status?: number, text?: string) => void
  /** the next submission's id is taken first by another client's job, as when two submit the same id */
  takeNextSubmissionId: () => void
  /** a job as GET /api/jobs/{id} shows it */
  job: (submissionId: string) => Record<string, unknown> | undefined
  /** pids of task workers running now */
  workers: () => number[]
  /** kills everything it started, closes the server, removes its files; safe to call twice */
  stop: () => Promise<void>
}

/** the dashboard's job routes, as Ray's job_head declares them (note the trailing slash of /api/jobs/) */
const ROUTES: Array<[method: string, path: RegExp, route: FakeRoute]> = [
  ['GET', /^\/api\/version$/, 'version'],
  ['POST', /^\/api\/jobs\/$/, 'submit'],
  ['GET', /^\/api\/jobs\/$/, 'list'],
  ['GET', /^\/api\/jobs\/([^/]+)$/, 'info'],
  ['DELETE', /^\/api\/jobs\/([^/]+)$/, 'delete'],
  ['GET', /^\/api\/jobs\/([^/]+)\/logs$/, 'logs'],
  ['POST', /^\/api\/jobs\/([^/]+)\/stop$/, 'stop']
]

class HttpFailure extends Error {
  readonly status: number
  constructor (status: number, text: string) {
    super(text)
    this.status = status
  }
}

/**
 * A fake Ray head on 127.0.0.1:0: the dashboard's Jobs REST API with the
 * shapes and errors Ray documents (../../../../shared/CLUSTERS.md, "Ray"),
 * and, behind /_fake/, what the fake `ray` module of its entrypoints uses
 * to run tasks. Entrypoints really run, as `sh -c` in their own process
 * group; tasks really run, each in a worker process.
 */
export async function startFakeRay (opts: FakeRayOptions = {}): Promise<FakeRay> {
  const dir = await tempDir('zp-fake-ray-')
  const pool = new ResourcePool({ CPU: opts.cpus ?? 4, GPU: opts.gpus ?? 0, ...opts.resources })
  const jobs = new Map<string, FakeJob>()
  const failures = new Map<FakeRoute, { status: number, text: string }>()
  let takeNext = false
  let jobSeq = 0
  let port = 0

  const workerEnv = (job: FakeJob): NodeJS.ProcessEnv => ({
    ...process.env,
    ...job.envVars,
    RAY_ADDRESS: `127.0.0.1:${port}`,
    PYTHONPATH: [FAKE_RAY_PYTHONPATH, process.env.PYTHONPATH].filter(p => p != null && p !== '').join(':'),
    PYTHONUNBUFFERED: '1',
    // no __pycache__ in the checkout
    PYTHONDONTWRITEBYTECODE: '1',
    ...(opts.tmpDir != null ? { TMPDIR: opts.tmpDir } : {})
  })
  const byRayJobId = (jobId: string): FakeJob | undefined => [...jobs.values()].find(j => j.jobId === jobId)
  const tasks = new FakeTasks({
    pool,
    env: jobId => {
      const job = byRayJobId(jobId)
      return job != null && job.status === 'RUNNING' ? workerEnv(job) : undefined
    },
    log: (jobId, line) => {
      const job = byRayJobId(jobId)
      // a worker's last lines may come after the head has stopped
      if (job != null && !job.log.writableEnded) job.log.write(line + '\n')
    },
    freed: () => { schedule() }
  })
  const host = {
    env: (job: FakeJob): NodeJS.ProcessEnv => ({
      ...workerEnv(job),
      // how Ray hands the driver its job's config; ray.init reads the submission id from it
      RAY_JOB_CONFIG_JSON_ENV_VAR: JSON.stringify({ runtime_env: job.request.runtime_env ?? {}, metadata: { ...job.request.metadata, job_submission_id: job.submissionId, job_name: job.submissionId } })
    }),
    ended: (job: FakeJob): void => {
      pool.give(job.needs)
      if (job.jobId != null) tasks.jobEnded(job.jobId)
      schedule()
    }
  }
  function schedule (): void {
    for (const job of jobs.values()) {
      if (job.status === 'PENDING' && pool.fits(job.needs)) {
        pool.take(job.needs)
        job.start()
      }
    }
    tasks.schedule()
  }
  const found = (id: string): FakeJob => {
    const job = jobs.get(id) ?? [...jobs.values()].find(j => j.jobId === id)
    if (job == null) throw new HttpFailure(404, `Job ${id} does not exist`)
    return job
  }

  async function dashboard (method: string, path: string, body: () => Promise<unknown>): Promise<unknown> {
    const matched = ROUTES.map(([verb, re, name]) => ({ name, m: verb === method ? re.exec(path) : null })).find(r => r.m != null)
    if (matched == null) throw new HttpFailure(404, '404: Not Found')
    const route = matched.name
    const failure = failures.get(route)
    if (failure != null) {
      failures.delete(route)
      throw new HttpFailure(failure.status, failure.text)
    }
    const id = decodeURIComponent(matched.m![1] ?? '')
    switch (route) {
      case 'version': return { version: '4', ray_version: '2.9.3', ray_commit: 'fake', session_name: 'session_fake' }
      case 'list': return [...jobs.values()].map(j => j.toJSON())
      case 'info': return found(id).toJSON()
      case 'logs': return { logs: await readFile(found(id).logFile, 'utf8').catch(() => '') }
      case 'stop': return { stopped: found(id).stop() }
      case 'delete': {
        const job = found(id)
        if (!job.final) throw new HttpFailure(500, traceback(`RuntimeError: Attempted to delete job '${job.submissionId}', but it is in a non-terminal state ${job.status}.`, 'delete_job'))
        jobs.delete(job.submissionId)
        return { deleted: true }
      }
      case 'submit': {
        let req: unknown
        try {
          req = await body()
        } catch {
          throw new HttpFailure(400, traceback('json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)'))
        }
        const invalid = submitError(req)
        if (invalid != null) throw new HttpFailure(400, traceback(invalid))
        const r = req as SubmitRequest
        const submissionId = r.submission_id ?? `raysubmit_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x').slice(0, 16)}`
        if (takeNext) {
          takeNext = false
          jobs.set(submissionId, new FakeJob(submissionId, { entrypoint: 'echo another client', metadata: {} }, join(dir.path, `${jobs.size}.log`), host))
        }
        if (jobs.has(submissionId)) throw new HttpFailure(400, traceback(`ValueError: Job with submission_id ${submissionId} already exists. Please use a different submission_id.`))
        jobs.set(submissionId, new FakeJob(submissionId, r, join(dir.path, `${jobs.size}.log`), host))
        schedule()
        return { job_id: submissionId, submission_id: submissionId }
      }
    }
  }

  /** the fake `ray` module's calls */
  async function raylet (method: string, path: string, body: () => Promise<unknown>): Promise<unknown> {
    const b = async (): Promise<Record<string, unknown>> => (await body()) as Record<string, unknown>
    if (path === '/_fake/init' && method === 'POST') {
      const { submission_id: id, pid } = await b() as { submission_id: string | null, pid: number }
      const job = id != null ? jobs.get(id) : undefined
      if (job == null) throw new HttpFailure(400, 'the fake Ray head runs only drivers of submitted jobs')
      job.jobId ??= Buffer.from(new Uint32Array([++jobSeq + 1]).buffer).toString('hex')
      job.driverPid = pid
      return { job_id: job.jobId, submission_id: job.submissionId }
    }
    if (path === '/_fake/resources') return { total: pool.total, available: pool.available }
    if (path === '/_fake/tasks' && method === 'POST') return { task_id: tasks.submit(await b() as unknown as TaskRequest) }
    if (path === '/_fake/tasks/states') return tasks.states((await b()).ids as string[])
    const m = /^\/_fake\/tasks\/([^/]+)\/(payload|result|cancel)$/.exec(path)
    if (m == null) throw new HttpFailure(404, '404: Not Found')
    const id = m[1]!
    if (m[2] === 'payload') return { payload: tasks.payload(id) }
    if (m[2] === 'cancel') {
      tasks.cancel(id, (await b()).force === true)
      return {}
    }
    if (method === 'POST') {
      tasks.posted(id, await b() as { ok: boolean })
      return {}
    }
    return tasks.result(id)
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const body = async (): Promise<unknown> => {
      const chunks: Buffer[] = []
      for await (const c of req) chunks.push(c as Buffer)
      return JSON.parse(Buffer.concat(chunks).toString('utf8'))
    }
    const handler = path.startsWith('/_fake/') ? raylet : dashboard
    handler(req.method ?? 'GET', path, body).then(result => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result))
    }, (err: unknown) => {
      const status = err instanceof HttpFailure ? err.status : err instanceof NoSuchTask ? 404 : 500
      const text = err instanceof HttpFailure ? err.message : traceback(`RuntimeError: ${(err as Error).message}`)
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port

  let stopped = false
  return {
    address: `http://127.0.0.1:${port}`,
    failNext: (route, status = 500, text) => {
      failures.set(route, { status, text: text ?? traceback('RuntimeError: the fake head was told to fail this request') })
    },
    takeNextSubmissionId: () => { takeNext = true },
    job: id => jobs.get(id)?.toJSON(),
    workers: () => tasks.workers(),
    stop: async () => {
      if (stopped) return
      stopped = true
      tasks.killAll()
      for (const job of jobs.values()) job.kill()
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
      await dir.remove()
    }
  }
}
