import { spawn } from 'node:child_process'
import type { ShardOutput } from '../../../protocols/campaign/shard.ts'
import { substitute, type ShardValues } from './exec-template.ts'
import { progressLimiter } from './progress.ts'
import { errorText, shardLabel } from './shard-label.ts'
import { ShardFailure, type RunContext, type Runner, type RunnerEnvironment, type ShardTask } from './types.ts'

export interface ExecRunnerOptions {
  /** after SIGTERM on cancel, how long the command's processes get before SIGKILL (default 2 s) */
  killGraceMs?: number
}

const STDERR_TAIL_CHARS = 4096
/** a stdout line longer than this is not a result row but a runaway program */
const MAX_LINE_CHARS = 64 * 1024 * 1024
/** after the command exits, how long a process that left the group may hold its stdout open */
const DRAIN_AFTER_EXIT_MS = 2_000

/**
 * `exec` workloads: a command template from this node's own exec config (the
 * wire names a template, never a command). The command runs without a shell
 * in its own process group; each stdout line is a JSON result row, except
 * `{"zp_progress": 0.4}`, which is progress. Everything in the group is
 * killed when the command exits, is cancelled or times out, so nothing it
 * started outlives the shard.
 */
export function createExecRunner (env: RunnerEnvironment, opts: ExecRunnerOptions = {}): Runner {
  const graceMs = opts.killGraceMs ?? 2_000
  /** per running command: kill it, and settle once it is gone */
  const running = new Set<() => Promise<void>>()

  async function run (task: ShardTask, ctx: RunContext): Promise<ShardOutput> {
    ctx.signal.throwIfAborted()
    const label = shardLabel(task)
    if (task.workload.kind !== 'exec') throw new ShardFailure(`${label}: the exec runner got a ${task.workload.kind} workload`, { retryable: false })
    const name = task.workload.command
    const template = Object.hasOwn(env.execTemplates, name) ? env.execTemplates[name] : undefined
    if (template === undefined) {
      const allowed = Object.keys(env.execTemplates).sort().join(', ')
      throw new ShardFailure(`${label}: this node does not allow command '${name}' (allowed: ${allowed === '' ? 'none; a node allows commands under commands: in its exec config' : allowed})`, { retryable: false })
    }
    const subject = `${label}: command '${name}'`
    const { shard } = task
    const values: ShardValues = {
      seed: String(shard.seed),
      index: String(shard.index),
      start: String(shard.start),
      end: String(shard.end),
      attempt: String(task.attempt),
      campaign: task.campaignId
    }
    let argv: string[]
    try {
      argv = template.argv.map((arg) => substitute(arg, values, task.params))
    } catch (err) {
      throw new ShardFailure(`${subject}: ${errorText(err)}`, { retryable: false })
    }
    const childEnv = {
      ...process.env,
      ...template.env,
      ZP_SHARD: JSON.stringify(shard),
      ZP_PARAMS: JSON.stringify(task.params),
      ZP_SEED: values.seed,
      ZP_INDEX: values.index,
      ZP_ATTEMPT: values.attempt,
      ZP_CAMPAIGN: values.campaign
    }
    const [program = '', ...args] = argv

    return await new Promise<ShardOutput>((resolve, reject) => {
      const rows: unknown[] = []
      const progress = progressLimiter(ctx.progress)
      let failure: ShardFailure | undefined
      let stderrTail = ''
      let pending = ''
      let lineNumber = 0
      let killTimer: ReturnType<typeof setTimeout> | undefined
      let drainTimer: ReturnType<typeof setTimeout> | undefined

      // detached: the command leads a new process group, which killGroup() signals as a whole
      const child = spawn(program, args, { cwd: template.cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
      const killGroup = (sig: NodeJS.Signals): void => {
        if (child.pid === undefined) return
        try {
          process.kill(-child.pid, sig)
        } catch {
          // ESRCH: nothing left in the group
        }
      }
      const failWith = (message: string, retryable: boolean): void => {
        failure ??= new ShardFailure(`${subject}: ${message}`, { retryable })
        killGroup('SIGKILL')
      }
      const onAbort = (): void => {
        killGroup('SIGTERM')
        killTimer = setTimeout(() => { killGroup('SIGKILL') }, graceMs)
      }
      const gone = Promise.withResolvers<void>()
      const closeNow = async (): Promise<void> => {
        failWith('the worker node closed its runners while the command ran', true)
        await gone.promise
      }
      running.add(closeNow)
      ctx.signal.addEventListener('abort', onAbort, { once: true })

      const onLine = (line: string): void => {
        lineNumber++
        if (failure !== undefined || line.trim() === '') return
        let value: unknown
        try {
          value = JSON.parse(line)
        } catch {
          failWith(`line ${lineNumber} of its stdout is not JSON (each stdout line must be one JSON result row): ${clip(line, 200)}`, false)
          return
        }
        const fraction = progressOf(value)
        if (fraction === undefined) rows.push(value)
        else progress.push(fraction)
      }
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk: string) => {
        const lines = (pending + chunk).split('\n')
        pending = lines.pop() ?? ''
        for (const line of lines) onLine(line.endsWith('\r') ? line.slice(0, -1) : line)
        if (pending.length > MAX_LINE_CHARS) failWith(`line ${lineNumber + 1} of its stdout is longer than ${MAX_LINE_CHARS} characters`, false)
      })
      child.stderr.setEncoding('utf8')
      child.stderr.on('data', (chunk: string) => {
        stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS)
        ctx.log.debug({ command: name, shard: shard.index, stderr: clip(chunk, 2000) }, 'exec command stderr')
      })

      child.on('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' ? ` (is ${program} installed and on PATH, and does cwd ${template.cwd ?? '(inherited)'} exist?)`
          : err.code === 'E2BIG' ? ' (the shard is too large to pass in ZP_SHARD; use fewer grid points per shard)' : ''
        failWith(`could not start ${program}: ${err.message}${hint}`, true)
      })
      child.on('exit', () => {
        // whatever the command left running in its group goes with it
        killGroup('SIGKILL')
        drainTimer = setTimeout(() => {
          child.stdout.destroy()
          child.stderr.destroy()
        }, DRAIN_AFTER_EXIT_MS)
      })
      // 'close' comes once stdout has ended, so every line has been seen; also after a failed spawn
      child.on('close', (code, signal) => {
        clearTimeout(killTimer)
        clearTimeout(drainTimer)
        progress.stop()
        running.delete(closeNow)
        gone.resolve()
        ctx.signal.removeEventListener('abort', onAbort)
        if (ctx.signal.aborted) {
          reject(ctx.signal.reason)
          return
        }
        if (failure === undefined) onLine(pending)
        if (failure !== undefined) reject(failure)
        else if (code === 0) resolve({ rows, info: { command: name } })
        else {
          const how = signal !== null ? `was killed by ${signal}` : `exited with code ${code ?? 'unknown'}`
          const stderr = stderrTail.trim()
          reject(new ShardFailure(`${subject} ${how}${stderr === '' ? ' (no stderr output)' : `; the end of its stderr:\n${stderr}`}`, { retryable: true }))
        }
      })
    })
  }

  return {
    run,
    close: async () => { await Promise.all([...running].map(async (close) => { await close() })) }
  }
}

/** `{"zp_progress": 0.4}` and nothing else is a progress line; anything else is a row. */
function progressOf (value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const keys = Object.keys(value)
  const fraction = (value as { zp_progress?: unknown }).zp_progress
  return keys.length === 1 && typeof fraction === 'number' ? fraction : undefined
}

function clip (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`
}
