import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

// The bridge suite's native Dask client (bench/dask-price.py): the Monte Carlo shards as Dask tasks on a running cluster.

const CLIENT_SCRIPT = fileURLToPath(new URL('./dask-price.py', import.meta.url))
const SHARD_SCRIPT = fileURLToPath(new URL('./price-shard.mjs', import.meta.url))
const READY_TIMEOUT_MS = 90_000
const RUN_TIMEOUT_MS = 600_000

/** spawn: a Node process per task; warm: one Node process per worker, fed over a pipe; numpy: the same simulation in numpy */
export type NativeMode = 'spawn' | 'warm' | 'numpy'

export interface PriceShard {
  index: number
  seed: number
  start: number
  end: number
}

export interface PriceRow {
  paths: number
  sumPayoff: number
  sumPayoffSq: number
}

export interface DaskPriceClient {
  pid: number
  /** one task per shard, gathered; seconds of wall time as the client measured it, and the rows in shard order */
  run: (mode: NativeMode, shards: PriceShard[], params: Record<string, unknown>, signal: AbortSignal) => Promise<{ seconds: number, rows: PriceRow[] }>
}

/**
 * Starts the client with the cluster's Python; resolves once it sees
 * `workers` workers. It stops (and stops the warm Node processes on the
 * workers) with `stack`.
 */
export async function startDaskPrice (opts: { python: string, address: string, workers: number, signal: AbortSignal }, stack: AsyncDisposableStack): Promise<DaskPriceClient> {
  const client = spawn(opts.python, [CLIENT_SCRIPT, opts.address, String(opts.workers), process.execPath, SHARD_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  client.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  // closing stdin is how the client is told to stop; one that already died must not turn that into an EPIPE crash here
  client.stdin.on('error', () => {})
  const kill = (): void => { client.kill('SIGKILL') }
  process.once('exit', kill)
  stack.defer(async () => {
    if (client.exitCode == null && client.signalCode == null) {
      client.stdin.end()
      const timer = setTimeout(kill, 20_000)
      await once(client, 'exit')
      clearTimeout(timer)
    }
    process.off('exit', kill)
  })
  const lines = createInterface({ input: client.stdout })
  const gone = new AbortController()
  client.once('exit', (code, sig) => { gone.abort(new Error(`the Dask client (bench/dask-price.py) exited (${sig ?? code}): ${stderr.trim()}`)) })
  client.once('error', (err) => { gone.abort(err) })
  const next = async (timeoutMs: number, signal: AbortSignal): Promise<Record<string, unknown>> => {
    try {
      const [line] = await once(lines, 'line', { signal: AbortSignal.any([signal, gone.signal, AbortSignal.timeout(timeoutMs)]) }) as [string]
      return JSON.parse(line) as Record<string, unknown>
    } catch (err) {
      throw gone.signal.aborted ? gone.signal.reason : err
    }
  }
  await next(READY_TIMEOUT_MS, opts.signal)
  return {
    pid: client.pid!,
    run: async (mode, shards, params, signal) => {
      client.stdin.write(`${JSON.stringify({ mode, shards, params })}\n`)
      const reply = await next(RUN_TIMEOUT_MS, signal)
      return { seconds: reply.seconds as number, rows: reply.rows as PriceRow[] }
    }
  }
}
