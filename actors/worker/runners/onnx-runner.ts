import { availableParallelism } from 'node:os'
import type { ShardOutput } from '../../../protocols/campaign/shard.ts'
import { ortReason } from '../../../node/probe/onnx-eps.ts'
import { modelLoadFailure, providerInfo, providerPlan } from './onnx-plan.ts'
import type { OnnxThreadData, RunDone, RunReport, RunRequest, SessionReady } from './onnx-protocol.ts'
import { errorText, shardLabel } from './shard-label.ts'
import { ThreadLoadError, ThreadPools, type PoolThread, type ThreadKind, type ThreadPoolStats } from './thread-pool.ts'
import { runOnThread } from './thread-run.ts'
import { ShardFailure, type RunContext, type Runner, type RunnerEnvironment, type ShardTask } from './types.ts'

/** the result field that holds a row's global index */
const ROW_FIELD = 'row'

export interface OnnxRunnerOptions {
  /** an idle thread, and its session, exits after this long (default 30 s) */
  idleMs?: number
  /**
   * how long a thread may take to stop after an abort before it is ended
   * (default 2 s); one inside a batch ends when the batch returns, since ORT
   * cannot be interrupted (ThreadKind.stop)
   */
  abortGraceMs?: number
}

export interface OnnxRunner extends Runner {
  /** sessionsCreated: one per thread started for a (model, provider plan); a thread reuses its session for every shard */
  stats: () => ThreadPoolStats & { sessionsCreated: number }
}

const ONNX_THREADS: ThreadKind<OnnxThreadData> = {
  name: 'ONNX',
  script: new URL('./onnx-thread.ts', import.meta.url),
  logFields: ({ model }) => ({ model }),
  // ERR_WORKER_OUT_OF_MEMORY, say, or a bug of ours: the thread, not the shard, is at fault
  describeExit: (code, uncaught) => uncaught === undefined
    ? `its ONNX worker thread ended unexpectedly (exit code ${code})`
    : `its ONNX worker thread failed: ${uncaught.name}: ${uncaught.message}`,
  startError: (description) => new Error(`the ONNX worker thread did not start: ${description}`),
  // measured: terminate() while the thread is inside session.run or InferenceSession.create aborts the whole process
  // ("terminate called after throwing an instance of 'Napi::Error'"), so a thread is asked, and exits between ORT calls
  stop: 'ask'
}

type OnnxThread = PoolThread<OnnxThreadData, SessionReady, RunReport>

/**
 * `onnx` workloads: batch inference over a shard's rows of a data set. Each
 * result row is `{ row: <global row index>, [output.column]: value }`, the
 * value a number when the model gives one value per row, else an array.
 *
 * onnxruntime-node runs a batch synchronously on the calling thread, so
 * shards run in worker threads (onnx-thread.ts), never on the node's event
 * loop: each reads, parses and infers its own shard, and the node's
 * networking goes on meanwhile. Threads are pooled per (model, provider plan),
 * up to the node's slots, and each opens its ORT session once.
 *
 * intraOpNumThreads: a node runs `slots` shards at once, of any workload
 * kind, so each session gets its share of the cores, max(1, floor(cores /
 * slots)), rather than ORT's default of all of them per session, which
 * oversubscribes the machine as soon as two shards run together. With slots =
 * cores (the default) that is 1, each thread parsing and inferring on its own
 * core. Measured on 2 cores (examples/onnx-batch MLP, batch 512, 2000-row
 * shards): slots 2 ran ~570k rows/s at 1 intra-op thread, ~250k at 2 (ORT's
 * spinning pool threads fight the other shard's parsing); slots 1 ran about
 * the same at 1 or 2.
 */
export function createOnnxRunner (env: RunnerEnvironment, opts: OnnxRunnerOptions = {}): OnnxRunner {
  const intraOpNumThreads = Math.max(1, Math.floor(availableParallelism() / Math.max(1, env.slots)))
  const graceMs = opts.abortGraceMs ?? 2_000
  let sessionsCreated = 0
  const pools = new ThreadPools<OnnxThreadData, SessionReady, RunReport>(ONNX_THREADS, {
    maxThreads: Math.max(1, env.slots),
    idleMs: opts.idleMs ?? 30_000,
    log: env.log,
    onReady: (ready, { model, plan }) => {
      sessionsCreated++
      const info = providerInfo(plan, ready)
      if (info.fallbackFrom !== undefined) env.log.warn({ model, wanted: info.fallbackFrom, executionProvider: info.executionProvider, reason: info.fallbackReason }, 'ONNX execution provider unusable; fell back')
    }
  })

  async function run (task: ShardTask, ctx: RunContext): Promise<ShardOutput> {
    ctx.signal.throwIfAborted()
    const label = shardLabel(task)
    const { workload } = task
    if (workload.kind !== 'onnx') throw new ShardFailure(`${label}: the onnx runner got a ${workload.kind} workload`, { retryable: false })
    const { model, data } = task.files
    if (model === undefined || data === undefined) {
      throw new ShardFailure(`${label}: the model or the data slice file is missing (files.model, files.data); the worker fetches both before it runs the shard`, { retryable: false })
    }
    if (workload.output.column === ROW_FIELD) {
      throw new ShardFailure(`${label}: output.column '${ROW_FIELD}' would overwrite the row index every result row carries; choose another name`, { retryable: false })
    }
    const plan = providerPlan(workload.executionProviders, env.capabilities())
    const key = `${model}\0${plan.map(({ ep, skip }) => skip === undefined ? ep : `-${ep}`).join(',')}`
    let thread: OnnxThread
    try {
      thread = await pools.acquire(key, { model, plan, intraOpNumThreads }, ctx.signal)
    } catch (err) {
      if (err instanceof ThreadLoadError) throw new ShardFailure(`${label}: ${modelLoadFailure(model, plan, err.message)}`, { retryable: false, cause: err })
      if (ctx.signal.aborted) throw ctx.signal.reason
      throw new ShardFailure(`${label}: ${errorText(err)}`, { retryable: true, cause: err })
    }
    try {
      const info = providerInfo(plan, await thread.ready)
      const { shard } = task
      const done = await runOn(thread, { workload, data, firstRow: shard.start, rows: shard.end - shard.start }, ctx, label)
      return { rows: resultRows(done, shard.start, workload.output.column), info }
    } finally {
      pools.release(thread, key)
    }
  }

  async function runOn (thread: OnnxThread, shard: Omit<RunRequest, 'type' | 'id'>, ctx: RunContext, label: string): Promise<RunDone> {
    return await runOnThread(thread, ctx.signal, graceMs, {
      start: (id) => {
        const request: RunRequest = { type: 'run', id, ...shard }
        thread.post(request)
      },
      onMessage: (message, settle) => {
        switch (message.type) {
          case 'progress':
            // a run being aborted may still report: the caller has moved on
            if (!ctx.signal.aborted) ctx.progress(message.fraction)
            break
          case 'done':
            settle.done(message)
            break
          case 'failed': {
            const text = message.ortError === undefined ? message.message : message.message + ortReason(message.ortError)
            settle.fail(new ShardFailure(`${label}: ${text}`, { retryable: message.retryable }))
            break
          }
        }
      },
      ended: (description) => new ShardFailure(`${label}: ${description}`, { retryable: true }),
      graceExpired: `the shard's ONNX thread did not stop within ${graceMs} ms of the abort, so it was ended`
    })
  }

  return {
    run,
    close: async () => { await pools.close() },
    stats: () => ({ ...pools.stats(), sessionsCreated })
  }
}

/** One result row per value (or `perRow` values) of the thread's output, numbered from the shard's first row. */
function resultRows ({ values, perRow }: RunDone, firstRow: number, column: string): unknown[] {
  const count = values.length / perRow
  const rows: unknown[] = new Array(count)
  const value = (k: number): unknown => {
    const v = values[k]
    return typeof v === 'bigint' ? Number(v) : v
  }
  for (let i = 0; i < count; i++) {
    const at = i * perRow
    const row: Record<string, unknown> = { [ROW_FIELD]: firstRow + i }
    row[column] = perRow === 1 ? value(at) : Array.from({ length: perRow }, (_, k) => value(at + k))
    rows[i] = row
  }
  return rows
}
