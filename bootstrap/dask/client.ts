import { execFile, type ExecFileException } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { z } from 'zod'
import type { EngineView } from '../../protocols/bridge/schema.ts'
import { deadline, isTimeout } from '../../protocols/common/signals.ts'

/**
 * The Dask bridge's client port: runs driver.py (beside this file) with a
 * Python that can import distributed, one process per call, and turns its one
 * JSON line into a result or a DaskError.
 */
export const DRIVER_PY = fileURLToPath(new URL('./driver.py', import.meta.url))
/** tried after --python and $ZP_DASK_PYTHON: a python3 on PATH (a venv, pyenv) may not see Debian's packages */
export const FALLBACK_PYTHONS = ['python3', '/usr/bin/python3'] as const
export const PYTHON_ENV = 'ZP_DASK_PYTHON'
const DEFAULT_TIMEOUT_MS = 60_000
/** `import distributed` takes about a second on a loaded machine */
const PROBE_TIMEOUT_MS = 30_000
const MAX_OUTPUT = 16 * 1024 * 1024

export type DaskErrorCode =
  /** the scheduler does not answer at that address */
  | 'unreachable'
  /** the driver did not finish within the client's timeout */
  | 'timeout'
  /** the driver refused its arguments */
  | 'bad-input'
  /** a node process could not start, or exited at once, on a Dask worker (the plugin is unregistered again) */
  | 'node-failed'
  /** the Python given cannot import distributed */
  | 'no-distributed'
  /** no Python can be run that imports distributed */
  | 'no-python'
  /** the driver crashed or printed something other than its JSON line */
  | 'driver'

const DRIVER_CODES = new Set<string>(['unreachable', 'bad-input', 'node-failed', 'no-distributed'])

export class DaskError extends Error {
  override name = 'DaskError'
  readonly code: DaskErrorCode

  constructor (code: DaskErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

const WorkerSchema = z.object({
  name: z.string(),
  address: z.string(),
  nthreads: z.number(),
  child_pid: z.number().nullable(),
  alive: z.boolean(),
  exit_code: z.number().nullable()
}).transform(w => ({ name: w.name, address: w.address, nthreads: w.nthreads, childPid: w.child_pid, alive: w.alive, exitCode: w.exit_code }))
const InfoSchema = z.object({ registered: z.boolean(), workers: z.array(WorkerSchema) })
const UpSchema = z.object({ plugin: z.string(), workers: z.array(z.object({ name: z.string(), address: z.string() })) })
const DownSchema = z.object({ stopped: z.number() })
const CheckSchema = z.object({ workers: z.number(), version: z.string() })
const ErrorSchema = z.object({ error: z.string(), fix: z.string(), code: z.string().optional() })

/** A Dask worker and the node process the bridge's plugin started on it. */
export type DaskWorkerInfo = z.infer<typeof WorkerSchema>
export type DaskInfo = z.infer<typeof InfoSchema>
export type DaskUpResult = z.infer<typeof UpSchema>
export type DaskDownResult = z.infer<typeof DownSchema>
export type DaskCheckResult = z.infer<typeof CheckSchema>

export interface DaskUpOptions {
  /** tcp://HOST:8786 */
  scheduler: string
  /** the bridge's id: the plugin is zp-node-<id> */
  id: string
  /** the node's command; {worker}, {slots}, {datadir} and {id} are filled in on each worker */
  argv: string[]
  /** added to the worker's environment for the node */
  env?: Record<string, string>
  /** {slots}: work slots per node (default: the worker's thread count) */
  perWorker?: number
  /** seconds a node gets to drain after SIGTERM before SIGKILL (default 20) */
  drainS?: number
}

export interface DaskDriverOptions {
  /** a Python that can import distributed (default: DaskDriver.findPython()) */
  python?: string
  /** per call; `down` must also fit the nodes' drain (default 60 s) */
  timeoutMs?: number
  log?: Logger
}

export class DaskDriver {
  readonly #timeoutMs: number
  readonly #log: Logger | undefined
  #python: Promise<string> | undefined

  constructor (opts: DaskDriverOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#log = opts.log
    if (opts.python != null) this.#python = Promise.resolve(opts.python)
  }

  /** The first of `preferred`, $ZP_DASK_PYTHON, python3, /usr/bin/python3 that can import distributed (its sys.executable). */
  static async findPython (preferred?: string, signal?: AbortSignal): Promise<string> {
    const tried = [...new Set([preferred, process.env[PYTHON_ENV], ...FALLBACK_PYTHONS].filter((p): p is string => p != null && p !== ''))]
    for (const python of tried) {
      const d = deadline(PROBE_TIMEOUT_MS, signal)
      try {
        const { code, stdout } = await run(python, ['-c', 'import sys, distributed; print(sys.executable)'], d.signal)
        if (code === 0) return stdout.trim() !== '' ? stdout.trim() : python
      } catch {
        if (signal?.aborted === true) throw signal.reason
      } finally {
        d.clear()
      }
    }
    throw new DaskError('no-python', `no Python here can import distributed (tried ${tried.join(', ')}): pass --python PATH to the Python your Dask workers run, or install python3-distributed`)
  }

  async up (o: DaskUpOptions, signal?: AbortSignal): Promise<DaskUpResult> {
    const args = ['--id', o.id, '--argv-json', JSON.stringify(o.argv), '--env-json', JSON.stringify(o.env ?? {})]
    if (o.perWorker != null) args.push('--per-worker', String(o.perWorker))
    if (o.drainS != null) args.push('--drain-s', String(o.drainS))
    return await this.#call('up', o.scheduler, args, UpSchema, signal)
  }

  async info (scheduler: string, id: string, signal?: AbortSignal): Promise<DaskInfo> {
    return await this.#call('info', scheduler, ['--id', id], InfoSchema, signal)
  }

  /** Unregisters the plugin (each node drains) and kills what is left; a bridge that is not registered stops 0. */
  async down (scheduler: string, id: string, signal?: AbortSignal): Promise<DaskDownResult> {
    return await this.#call('down', scheduler, ['--id', id], DownSchema, signal)
  }

  async check (scheduler: string, signal?: AbortSignal): Promise<DaskCheckResult> {
    return await this.#call('check', scheduler, [], CheckSchema, signal)
  }

  async #resolvePython (signal?: AbortSignal): Promise<string> {
    this.#python ??= DaskDriver.findPython(undefined, signal)
    try {
      return await this.#python
    } catch (err) {
      this.#python = undefined // a later call looks again (someone may install distributed meanwhile)
      throw err
    }
  }

  async #call<T> (cmd: string, scheduler: string, args: string[], schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
    const python = await this.#resolvePython(signal)
    // the driver's own connect timeout is shorter, so an absent scheduler is reported as such
    const connectS = Math.max(0.5, Math.min(10, this.#timeoutMs / 2000))
    const argv = [DRIVER_PY, cmd, '--scheduler', scheduler, '--timeout', String(connectS), ...args]
    const d = deadline(this.#timeoutMs, signal)
    const started = Date.now()
    let out: RunResult
    try {
      out = await run(python, argv, d.signal)
    } catch (err) {
      if (signal?.aborted === true) throw signal.reason
      if (d.signal.aborted && isTimeout(d.signal.reason)) {
        throw new DaskError('timeout', `the Dask driver's ${cmd} did not finish within ${this.#timeoutMs} ms (scheduler ${scheduler}): is the scheduler overloaded, or a node slow to drain? retry, or raise the timeout`)
      }
      const e = err as ExecFileException
      if (e.code === 'ENOENT' || e.code === 'EACCES') {
        throw new DaskError('no-python', `cannot run ${python} (${e.code}): pass --python PATH to the Python your Dask workers run`, { cause: err })
      }
      throw new DaskError('driver', `the Dask driver failed: ${e.message}`, { cause: err })
    } finally {
      d.clear()
    }
    this.#log?.debug({ cmd, scheduler, exit: out.code, ms: Date.now() - started }, 'dask driver')
    return parse(out, schema, `${python} ${DRIVER_PY} ${cmd}`)
  }
}

interface RunResult { code: number, stdout: string, stderr: string }

/** Runs to completion without a shell; a non-zero exit resolves (the driver reports errors that way), a spawn failure or abort rejects. */
async function run (file: string, args: string[], signal: AbortSignal): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    execFile(file, args, { signal, maxBuffer: MAX_OUTPUT, encoding: 'utf8', windowsHide: true }, (error: ExecFileException | null, stdout, stderr) => {
      if (error === null) resolve({ code: 0, stdout, stderr })
      else if (typeof error.code === 'number') resolve({ code: error.code, stdout, stderr })
      else reject(error)
    })
  })
}

function parse<T> (out: RunResult, schema: z.ZodType<T>, what: string): T {
  const line = out.stdout.trim().split('\n').at(-1) ?? ''
  let json: unknown
  try {
    json = JSON.parse(line)
  } catch {
    const tail = out.stderr.trim().split('\n').slice(-5).join(' | ')
    throw new DaskError('driver', `${what} exited with code ${out.code} without its JSON answer: ${tail !== '' ? tail : '(no output)'}; run it by hand to see the whole error`)
  }
  const failure = ErrorSchema.safeParse(json)
  if (out.code !== 0 && failure.success) {
    const { error, fix, code } = failure.data
    throw new DaskError(code != null && DRIVER_CODES.has(code) ? code as DaskErrorCode : 'driver', `${error}; ${fix}`)
  }
  const result = schema.safeParse(json)
  if (out.code !== 0 || !result.success) {
    throw new DaskError('driver', `${what} answered ${line.slice(0, 500)} (exit code ${out.code}), not what this client expects: is driver.py from this version of zp?`)
  }
  return result.data
}

/**
 * What `zp bridge list` shows of a Dask allocation: RUNNING while at least one
 * node process lives, PENDING while the plugin waits for workers (or its nodes
 * are all gone), ENDED once unregistered, FAILED when the driver could not ask.
 */
export function daskView (info: DaskInfo | DaskError): EngineView {
  if (info instanceof DaskError) return { state: 'FAILED', reason: info.message, requested: 0, running: 0 }
  const requested = info.workers.length
  const running = info.workers.filter(w => w.alive).length
  if (!info.registered) return { state: 'ENDED', requested: 0, running }
  if (running > 0) return { state: 'RUNNING', requested, running }
  if (requested === 0) return { state: 'PENDING', reason: 'no Dask worker connected', requested, running }
  const codes = [...new Set(info.workers.map(w => w.exitCode).filter(c => c != null))]
  return { state: 'PENDING', reason: `no node process running on the ${requested} Dask worker(s)${codes.length > 0 ? ` (exit codes ${codes.join(', ')})` : ''}; see node.out in each node's datadir`, requested, running }
}
