import { execFile, type ExecFileException } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import type { Logger } from 'pino'
import { deadline, isTimeout } from '../../protocols/common/signals.ts'
import { classify, SlurmError } from './errors.ts'
import { parseSacct, parseSbatch, parseSqueue, SACCT_FORMAT, SQUEUE_FORMAT, type SacctRow, type SqueueRow } from './parse.ts'

export { SlurmError, type SlurmErrorCode } from './errors.ts'
export type { SacctRow, SqueueRow } from './parse.ts'

/** Slurm commands answer in well under a second; a loaded controller may take many */
const DEFAULT_TIMEOUT_MS = 30_000
const MAX_OUTPUT = 16 * 1024 * 1024
/** what the Slurm bridges run; check() wants every one on PATH */
export const SLURM_COMMANDS = ['sbatch', 'squeue', 'sacct', 'scancel', 'sinfo'] as const
type SlurmCommand = typeof SLURM_COMMANDS[number]

export interface SlurmClientOptions {
  /** the commands' environment (PATH, SLURM_CONF …); default process.env */
  env?: NodeJS.ProcessEnv
  /** per command; default 30 s */
  timeoutMs?: number
  log?: Logger
}

/**
 * The Slurm bridges' client port: sbatch, squeue, sacct, scancel and sinfo,
 * run with execFile (no shell), each under a timeout and the caller's signal.
 * Failures become a SlurmError naming the cause and the fix.
 */
export class SlurmClient {
  readonly #env: NodeJS.ProcessEnv
  readonly #timeoutMs: number
  readonly #log: Logger | undefined

  constructor (opts: SlurmClientOptions = {}) {
    this.#env = opts.env ?? process.env
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#log = opts.log
  }

  /** Submits `scriptPath` with `args` (sbatch options) and resolves with the job id. */
  async sbatch (scriptPath: string, args: string[], signal: AbortSignal): Promise<string> {
    let stdout: string
    try {
      ({ stdout } = await this.#run('sbatch', ['--parsable', ...args, scriptPath], signal))
    } catch (err) {
      if (err instanceof SlurmError && /invalid partition/i.test(err.stderr)) throw await this.#noSuchPartition(err, args, signal)
      throw err
    }
    const id = parseSbatch(stdout)
    if (id == null) throw new SlurmError({ code: 'failed', command: 'sbatch', message: `sbatch printed no job id (got '${stdout.trim().slice(0, 200)}')` })
    return id
  }

  /**
   * Every array task of these jobs still known to the controller, one row per
   * task (pending ones too). Jobs that have left are not an error: they are
   * simply absent.
   */
  async squeue (jobIds: string[], signal: AbortSignal): Promise<SqueueRow[]> {
    if (jobIds.length === 0) return []
    const { stdout } = await this.#run('squeue', ['-h', '-r', '-j', jobIds.join(','), '-o', SQUEUE_FORMAT], signal, {
      // one unknown id alone makes squeue exit 1; in a list it is skipped
      tolerate: /Invalid job id specified/i
    })
    return parseSqueue(stdout)
  }

  /**
   * The accounting records of these jobs, one row per array task (see
   * parseSacct for pending ranges). Lags squeue by a few seconds: a task that
   * just ended may still show RUNNING, or be missing.
   */
  async sacct (jobIds: string[], signal: AbortSignal): Promise<SacctRow[]> {
    if (jobIds.length === 0) return []
    const { stdout } = await this.#run('sacct', ['-P', '-X', '-n', '-j', jobIds.join(','), `--format=${SACCT_FORMAT}`], signal)
    return parseSacct(stdout)
  }

  /** Cancels jobs or single array tasks (`12`, `12_3`); jobs already gone are not an error. */
  async scancel (ids: string[], signal: AbortSignal): Promise<void> {
    if (ids.length === 0) return
    await this.#run('scancel', ids, signal, { tolerate: /Invalid job id specified|already completing or completed/i })
  }

  /** The partitions `sinfo` shows. */
  async partitions (signal: AbortSignal): Promise<string[]> {
    const { stdout } = await this.#run('sinfo', ['-h', '-o', '%R'], signal)
    return [...new Set(stdout.split('\n').map(l => l.trim()).filter(l => l !== ''))]
  }

  /** Rejects unless every Slurm command the bridges run is on PATH. */
  async check (signal: AbortSignal): Promise<void> {
    signal.throwIfAborted()
    const dirs = (this.#env.PATH ?? '').split(delimiter).filter(d => d !== '')
    const missing: string[] = []
    for (const command of SLURM_COMMANDS) {
      if (!await accessible(dirs.map(d => join(d, command)))) missing.push(command)
    }
    if (missing.length > 0) throw notInstalled(missing.join(', '))
  }

  async #noSuchPartition (err: SlurmError, args: string[], signal: AbortSignal): Promise<SlurmError> {
    const partition = /invalid partition specified: (\S+)/i.exec(err.stderr)?.[1] ?? partitionArg(args) ?? '(default)'
    let known: string
    try {
      const names = await this.partitions(signal)
      known = names.length > 0 ? `the partitions here are ${names.join(', ')}` : 'sinfo shows no partition at all'
    } catch (listErr) {
      known = `sinfo could not list the partitions (${(listErr as Error).message})`
    }
    return new SlurmError({
      code: 'invalid-partition',
      command: 'sbatch',
      message: `Slurm has no partition "${partition}": ${known}; pass one of them with --partition, or none for the cluster's default`,
      stderr: err.stderr,
      cause: err
    })
  }

  async #run (command: SlurmCommand, args: string[], signal: AbortSignal, opts: { tolerate?: RegExp } = {}): Promise<{ stdout: string, stderr: string }> {
    const conf = this.#env.SLURM_CONF
    // without its file, every Slurm command retries for 60 s before saying so
    if (conf != null && conf !== '' && !await accessible([conf], constants.R_OK)) {
      throw new SlurmError({ code: 'no-config', command, message: `SLURM_CONF names ${conf}, which cannot be read: point SLURM_CONF at the cluster's slurm.conf` })
    }
    const started = Date.now()
    const guard = deadline(this.#timeoutMs, signal)
    try {
      const result = await new Promise<{ error: ExecFileException | null, stdout: string, stderr: string }>((resolve) => {
        execFile(command, args, { env: this.#env, signal: guard.signal, maxBuffer: MAX_OUTPUT, encoding: 'utf8', windowsHide: true }, (error, stdout, stderr) => {
          resolve({ error, stdout, stderr })
        })
      })
      const { error, stdout, stderr } = result
      this.#log?.debug({ command, args, ms: Date.now() - started, exitCode: error?.code ?? 0 }, `${command} ran`)
      if (error == null) return { stdout, stderr }
      if (signal.aborted) throw signal.reason
      if (error.code === 'ENOENT') throw notInstalled(command, error)
      if (guard.signal.aborted && isTimeout(guard.signal.reason)) {
        const known = classify(stderr)
        throw new SlurmError({
          code: known?.code ?? 'timeout',
          command,
          message: `${command} did not finish within ${this.#timeoutMs / 1000} s: ${known?.message ?? 'the Slurm controller may be overloaded or unreachable; check it with scontrol ping'}`,
          stderr,
          cause: error
        })
      }
      if (typeof error.code === 'number' && opts.tolerate?.test(stderr) === true) return { stdout, stderr }
      const known = classify(stderr)
      throw new SlurmError({
        code: known?.code ?? 'failed',
        command,
        message: known?.message ?? `${command} failed (${typeof error.code === 'number' ? `exit code ${error.code}` : error.message})`,
        stderr,
        cause: error
      })
    } finally {
      guard.clear()
    }
  }
}

function notInstalled (commands: string, cause?: unknown): SlurmError {
  const first = commands.split(', ')[0]!
  return new SlurmError({
    code: 'not-installed',
    command: first,
    message: `${commands} not found on PATH: install the Slurm client (apt-get install slurm-client) or run zp-node where ${first} works`,
    cause
  })
}

/** `--partition=P`, `--partition P`, `-p P`, `-pP` among sbatch options */
function partitionArg (args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a.startsWith('--partition=')) return a.slice('--partition='.length)
    if (a === '--partition' || a === '-p') return args[i + 1]
    if (/^-p./.test(a)) return a.slice(2)
  }
  return undefined
}

/** Whether any of these paths can be accessed with `mode` (default: executed) */
async function accessible (paths: string[], mode = constants.X_OK): Promise<boolean> {
  for (const path of paths) {
    try {
      await access(path, mode)
      return true
    } catch {}
  }
  return false
}
