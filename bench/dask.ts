import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

// A Dask cluster on this machine for the campaign suite: scheduler, workers and a client, each a process of its own.

/** Debian's Python: the `python3` on PATH is another interpreter that cannot see Debian's packages */
const PYTHON = '/usr/bin/python3'
const DASK = '/usr/bin/dask'
const CLIENT_SCRIPT = fileURLToPath(new URL('./dask-noop.py', import.meta.url))
const START_TIMEOUT_MS = 90_000

export interface DaskCluster {
  /** scheduler, then the workers */
  pids: { scheduler: number, workers: number[], client: number }
  /** client.map of a no-op over `tasks` items, gathered; seconds of wall time as the client measured it */
  run: (tasks: number, signal: AbortSignal) => Promise<number>
}

/** The version of Debian's Dask distributed, or undefined when it is not installed. */
export function daskVersion (): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import distributed; print(distributed.__version__)'], { encoding: 'utf8', timeout: 60_000 })
  return probe.status === 0 ? probe.stdout.trim() : undefined
}

/**
 * Starts `dask scheduler` and `workers` × `dask worker --nthreads 1
 * --no-nanny` on loopback (no nanny: one process per worker, like a zp-node),
 * then the client, which waits for every worker. Everything stops with `stack`.
 */
export async function startDask (dir: string, workers: number, stack: AsyncDisposableStack, signal: AbortSignal): Promise<DaskCluster> {
  await mkdir(dir, { recursive: true })
  const schedulerFile = join(dir, 'scheduler.json')
  const scheduler = daemon(DASK, ['scheduler', '--host', '127.0.0.1', '--port', '0', '--no-dashboard', '--scheduler-file', schedulerFile], join(dir, 'scheduler.out'), stack)
  const workerProcs = Array.from({ length: workers }, (_, i) => daemon(DASK, [
    'worker', '--scheduler-file', schedulerFile, '--nthreads', '1', '--no-nanny', '--no-dashboard',
    '--host', '127.0.0.1', '--local-directory', join(dir, `worker-${i + 1}`)
  ], join(dir, `worker-${i + 1}.out`), stack))
  const client = spawn(PYTHON, [CLIENT_SCRIPT, schedulerFile, String(workers)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  client.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  // closing stdin is how the client is told to stop; one that already died must not turn that into an EPIPE crash here
  client.stdin.on('error', () => {})
  stack.defer(async () => {
    client.stdin.end()
    await stopped(client, 10_000)
  })
  const lines = createInterface({ input: client.stdout })
  // a client that dies ends any wait for its next line
  const gone = new AbortController()
  client.once('exit', () => { gone.abort(new Error('the Dask client exited')) })
  client.once('error', (err) => { gone.abort(err) })
  const next = async (what: string, timeoutMs: number, sig: AbortSignal): Promise<Record<string, unknown>> => {
    try {
      const [line] = await once(lines, 'line', { signal: AbortSignal.any([sig, gone.signal, AbortSignal.timeout(timeoutMs)]) }) as [string]
      return JSON.parse(line) as Record<string, unknown>
    } catch (err) {
      if (!gone.signal.aborted) throw err
      const logs = await Promise.all(['scheduler', ...workerProcs.map((_, i) => `worker-${i + 1}`)].map(async n =>
        `--- ${n} ---\n${(await readFile(join(dir, `${n}.out`), 'utf8').catch(() => '')).slice(-1500)}`))
      throw new Error(`the Dask client exited while waiting for ${what}:\n${stderr}\n${logs.join('\n')}`)
    }
  }
  await next('the workers', START_TIMEOUT_MS, signal)
  return {
    pids: { scheduler: scheduler.pid!, workers: workerProcs.map(w => w.pid!), client: client.pid! },
    run: async (tasks, sig) => {
      client.stdin.write(`${tasks}\n`)
      const reply = await next(`${tasks} tasks`, 600_000, sig)
      return reply.seconds as number
    }
  }
}

/** A long-running process whose output goes to `outFile`; SIGTERM with `stack`, SIGKILL if it lingers or the bench exits first. */
function daemon (command: string, args: string[], outFile: string, stack: AsyncDisposableStack): ChildProcess {
  const fd = openSync(outFile, 'a')
  const child = spawn(command, args, { stdio: ['ignore', fd, fd] })
  closeSync(fd)
  // a failed spawn has no pid and never exits; the client's wait for the workers reports it
  child.on('error', () => {})
  const kill = (): void => { child.kill('SIGKILL') }
  process.once('exit', kill)
  stack.defer(async () => {
    child.kill('SIGTERM')
    await stopped(child, 10_000)
    process.off('exit', kill)
  })
  return child
}

/** Waits for `child` to exit, killing it after `graceMs`. */
async function stopped (child: ChildProcess, graceMs: number): Promise<void> {
  if (child.pid == null || child.exitCode != null || child.signalCode != null) return
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  await once(child, 'exit')
  clearTimeout(timer)
}
