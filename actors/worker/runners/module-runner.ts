import { basename } from 'node:path'
import type { ShardOutput } from '../../../protocols/campaign/shard.ts'
import type { RunReport, ThreadData, ToThread } from './module-protocol.ts'
import { errorText, shardLabel } from './shard-label.ts'
import { ThreadLoadError, ThreadPools, type PoolThread, type ThreadKind, type ThreadPoolStats } from './thread-pool.ts'
import { runOnThread } from './thread-run.ts'
import { ShardFailure, type RunContext, type Runner, type RunnerEnvironment, type ShardTask } from './types.ts'

export interface ModuleRunnerOptions {
  /** an idle thread exits after this long (default 30 s) */
  idleMs?: number
  /** how long a module may take to stop after an abort before its thread is terminated (default 2 s) */
  abortGraceMs?: number
}

export interface ModuleRunner extends Runner {
  stats: () => ThreadPoolStats
}

/** Node 24 strips the types of a worker's .ts entry like those of any other module. */
const MODULE_THREADS: ThreadKind<ThreadData> = {
  name: 'module',
  script: new URL('./module-thread.ts', import.meta.url),
  logFields: ({ modulePath }) => ({ module: basename(modulePath) }),
  describeExit: (code, uncaught) => uncaught === undefined
    ? `the module ended its worker thread (process.exit(${code}))`
    : `the module threw outside run() (in a callback or an unhandled promise), which ended its worker thread: ${uncaught.name}: ${uncaught.message}`,
  // ended by itself while importing: the module's own doing (a top-level process.exit or throw in a callback)
  startError: (description) => new ThreadLoadError(`while being imported, ${description}`),
  // a module stuck in a loop must be stopped where it is
  stop: 'terminate'
}

type ModuleThread = PoolThread<ThreadData, object, RunReport>

/**
 * `module` workloads: the campaign's ES module runs in worker threads, never
 * on the node's own thread, so a busy or crashing module cannot stall or take
 * down the node. Threads are pooled per module file (up to the node's slots)
 * and reused across shards; each imports its module once.
 */
export function createModuleRunner (env: RunnerEnvironment, opts: ModuleRunnerOptions = {}): ModuleRunner {
  const pools = new ThreadPools<ThreadData, object, RunReport>(MODULE_THREADS, {
    maxThreads: Math.max(1, env.slots),
    idleMs: opts.idleMs ?? 30_000,
    log: env.log
  })
  const graceMs = opts.abortGraceMs ?? 2_000

  async function run (task: ShardTask, ctx: RunContext): Promise<ShardOutput> {
    const label = shardLabel(task)
    const path = task.files.module
    if (path === undefined) {
      throw new ShardFailure(`${label}: no module file to run (files.module is not set); the worker fetches the workload's module blob before it runs the shard`, { retryable: false })
    }
    const name = task.workload.kind === 'module' ? task.workload.module.name : basename(path)
    let thread: ModuleThread
    try {
      thread = await pools.acquire(path, { modulePath: path }, ctx.signal)
    } catch (err) {
      if (err instanceof ThreadLoadError) throw new ShardFailure(`${label}: module ${name} (${path}): ${err.message}`, { retryable: false, cause: err })
      throw err
    }
    try {
      return await runOn(thread, task, ctx, `${label}: module ${name}`)
    } finally {
      pools.release(thread, path)
    }
  }

  async function runOn (thread: ModuleThread, task: ShardTask, ctx: RunContext, subject: string): Promise<ShardOutput> {
    const checkpoints: Array<Promise<void>> = []
    const post = (message: ToThread): void => { thread.post(message) }
    const saveCheckpoint = async (id: number, seq: number, state: unknown): Promise<void> => {
      let error: string | undefined
      try {
        if (ctx.checkpoint === undefined) ctx.log.debug({ shard: task.shard.index }, 'module saved a checkpoint but this run keeps none')
        else await ctx.checkpoint(state)
      } catch (err) {
        error = `the worker could not save the checkpoint: ${errorText(err)}`
      }
      post({ type: 'checkpoint-saved', id, seq, error })
    }
    return await runOnThread(thread, ctx.signal, graceMs, {
      start: (id) => { post({ type: 'run', id, shard: task.shard, campaign: task.campaignId, attempt: task.attempt, params: task.params, resumeFrom: task.resumeFrom }) },
      onMessage: (message, settle) => {
        switch (message.type) {
          case 'progress':
            ctx.progress(message.fraction)
            break
          case 'checkpoint':
            checkpoints.push(saveCheckpoint(message.id, message.seq, message.state))
            break
          case 'done':
            // the result counts once every checkpoint the module asked for is saved
            settle.done(Promise.all(checkpoints).then(() => ({ rows: message.rows })))
            break
          case 'failed': {
            const what = message.invalidResult ? 'returned a result that cannot be stored' : 'failed'
            settle.fail(new ShardFailure(`${subject} ${what}: ${message.message}`, { retryable: message.retryable }))
            break
          }
        }
      },
      ended: (description) => new ShardFailure(`${subject}: ${description}`, { retryable: true }),
      graceExpired: `the module did not stop within ${graceMs} ms of the abort, so its thread was terminated`
    })
  }

  return {
    run,
    close: async () => { await pools.close() },
    stats: () => pools.stats()
  }
}
