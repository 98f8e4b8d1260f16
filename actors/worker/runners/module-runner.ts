import { basename } from 'node:path'
import type { ShardOutput } from '../../../protocols/campaign/shard.ts'
import { ModuleLoadError, ModulePools, type ModulePoolStats, type ModuleThread } from './module-pool.ts'
import type { FromThread } from './module-protocol.ts'
import { errorText, shardLabel } from './shard-label.ts'
import { ShardFailure, type RunContext, type Runner, type RunnerEnvironment, type ShardTask } from './types.ts'

export interface ModuleRunnerOptions {
  /** an idle thread exits after this long (default 30 s) */
  idleMs?: number
  /** how long a module may take to stop after an abort before its thread is terminated (default 2 s) */
  abortGraceMs?: number
}

export interface ModuleRunner extends Runner {
  stats: () => ModulePoolStats
}

/**
 * `module` workloads: the campaign's ES module runs in worker threads, never
 * on the node's own thread, so a busy or crashing module cannot stall or take
 * down the node. Threads are pooled per module file (up to the node's slots)
 * and reused across shards; each imports its module once.
 */
export function createModuleRunner (env: RunnerEnvironment, opts: ModuleRunnerOptions = {}): ModuleRunner {
  const pools = new ModulePools({ maxThreads: Math.max(1, env.slots), idleMs: opts.idleMs ?? 30_000, log: env.log })
  const graceMs = opts.abortGraceMs ?? 2_000
  let lastId = 0

  async function run (task: ShardTask, ctx: RunContext): Promise<ShardOutput> {
    const label = shardLabel(task)
    const path = task.files.module
    if (path === undefined) {
      throw new ShardFailure(`${label}: no module file to run (files.module is not set); the worker fetches the workload's module blob before it runs the shard`, { retryable: false })
    }
    const name = task.workload.kind === 'module' ? task.workload.module.name : basename(path)
    let thread: ModuleThread
    try {
      thread = await pools.acquire(path, ctx.signal)
    } catch (err) {
      if (err instanceof ModuleLoadError) throw new ShardFailure(`${label}: module ${name} (${path}): ${err.message}`, { retryable: false, cause: err })
      throw err
    }
    try {
      return await runOn(thread, task, ctx, `${label}: module ${name}`)
    } finally {
      pools.release(thread, path)
    }
  }

  async function runOn (thread: ModuleThread, task: ShardTask, ctx: RunContext, subject: string): Promise<ShardOutput> {
    const { signal } = ctx
    signal.throwIfAborted()
    const id = ++lastId
    const checkpoints: Array<Promise<void>> = []
    let graceTimer: ReturnType<typeof setTimeout> | undefined
    let finished = false

    return await new Promise<ShardOutput>((resolve, reject) => {
      const finish = (settle: () => void): void => {
        if (finished) return
        finished = true
        clearTimeout(graceTimer)
        signal.removeEventListener('abort', onAbort)
        thread.job = undefined
        // once aborted, the caller gets the abort reason whatever the module did: the shard was not run to completion on its terms
        if (signal.aborted) reject(signal.reason)
        else settle()
      }
      const onAbort = (): void => {
        const reason = signal.reason as { name?: unknown, message?: unknown } | undefined
        thread.post({ type: 'abort', id, reason: { name: String(reason?.name ?? 'AbortError'), message: String(reason?.message ?? reason) } })
        graceTimer = setTimeout(() => { thread.end(`the module did not stop within ${graceMs} ms of the abort, so its thread was terminated`) }, graceMs)
      }
      const saveCheckpoint = async (seq: number, state: unknown): Promise<void> => {
        let error: string | undefined
        try {
          if (ctx.checkpoint === undefined) ctx.log.debug({ shard: task.shard.index }, 'module saved a checkpoint but this run keeps none')
          else await ctx.checkpoint(state)
        } catch (err) {
          error = `the worker could not save the checkpoint: ${errorText(err)}`
        }
        thread.post({ type: 'checkpoint-saved', id, seq, error })
      }
      const onMessage = (message: FromThread): void => {
        switch (message.type) {
          case 'progress':
            ctx.progress(message.fraction)
            break
          case 'checkpoint':
            checkpoints.push(saveCheckpoint(message.seq, message.state))
            break
          case 'done': {
            // the result counts once every checkpoint the module asked for is saved
            thread.job = undefined
            void Promise.all(checkpoints).then(() => { finish(() => { resolve({ rows: message.rows }) }) })
            break
          }
          case 'failed': {
            const what = message.invalidResult ? 'returned a result that cannot be stored' : 'failed'
            finish(() => { reject(new ShardFailure(`${subject} ${what}: ${message.message}`, { retryable: message.retryable })) })
            break
          }
        }
      }
      thread.job = {
        id,
        onMessage,
        onEnd: (description) => { finish(() => { reject(new ShardFailure(`${subject}: ${description}`, { retryable: true })) }) }
      }
      signal.addEventListener('abort', onAbort, { once: true })
      thread.post({ type: 'run', id, shard: task.shard, campaign: task.campaignId, attempt: task.attempt, params: task.params, resumeFrom: task.resumeFrom })
    })
  }

  return {
    run,
    close: async () => { await pools.close() },
    stats: () => pools.stats()
  }
}
