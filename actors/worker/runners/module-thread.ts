/**
 * Worker thread of the module runner (module-runner.ts). It imports one
 * campaign module once and then runs shards through its `run(shard, ctx)`,
 * one at a time, for as long as the parent keeps it. Not a module to import.
 * It keeps its imports to two small local files: thread start-up is on the
 * path of every new thread.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'
import type { FromThread, RunRequest, ThreadData, ToThread } from './module-protocol.ts'
import { asRows, plainDataProblem } from './plain-data.ts'
import { progressLimiter } from './progress.ts'

type RunFunction = (shard: unknown, ctx: unknown) => unknown

if (parentPort === null) throw new Error('module-thread.ts runs as a worker thread of the module runner, not on its own')
const port = parentPort
const post = (message: FromThread): void => { port.postMessage(message) }
const { modulePath } = workerData as ThreadData

const loaded = await load()
if (loaded !== undefined) serve(loaded)

function serve (run: RunFunction): void {
  const aborts = new Map<number, AbortController>()
  const checkpointsPending = new Map<number, { resolve: () => void, reject: (err: Error) => void }>()
  let checkpointSeq = 0

  port.on('message', (message: ToThread) => {
    if (message.type === 'run') void runShard(message)
    else if (message.type === 'abort') {
      const { name, message: text } = message.reason
      aborts.get(message.id)?.abort(new DOMException(text, name === 'TimeoutError' ? 'TimeoutError' : 'AbortError'))
    } else {
      const pending = checkpointsPending.get(message.seq)
      checkpointsPending.delete(message.seq)
      if (message.error === undefined) pending?.resolve()
      else pending?.reject(new Error(message.error))
    }
  })

  async function runShard (request: RunRequest): Promise<void> {
    const { id } = request
    const abort = new AbortController()
    aborts.set(id, abort)
    const progress = progressLimiter((fraction) => { post({ type: 'progress', id, fraction }) })
    const ctx = {
      seed: request.shard.seed,
      index: request.shard.index,
      attempt: request.attempt,
      campaign: request.campaign,
      params: request.params,
      resumeFrom: request.resumeFrom,
      signal: abort.signal,
      progress: progress.push,
      checkpoint: async (state: unknown): Promise<void> => {
        const problem = plainDataProblem(state, 'checkpoint state')
        if (problem !== undefined) throw new TypeError(`${problem}; checkpoints are stored and replicated, so they must be plain JSON data`)
        const seq = ++checkpointSeq
        await new Promise<void>((resolve, reject) => {
          checkpointsPending.set(seq, { resolve, reject })
          post({ type: 'checkpoint', id, seq, state })
        })
      }
    }
    try {
      const returned = await run(request.shard, ctx)
      const problem = returned === undefined ? undefined : plainDataProblem(returned, 'run() result')
      if (problem === undefined) post({ type: 'done', id, rows: asRows(returned) })
      else post({ type: 'failed', id, message: `${problem}; results must be plain JSON data (objects, arrays, strings, finite numbers, booleans, null)`, retryable: false, invalidResult: true })
    } catch (err) {
      post({ type: 'failed', id, message: describeThrown(err), retryable: (err as { retryable?: unknown } | null)?.retryable !== false, invalidResult: false })
    } finally {
      progress.stop()
      aborts.delete(id)
    }
  }
}

async function load (): Promise<RunFunction | undefined> {
  let exported: unknown
  try {
    const mod = await import(pathToFileURL(modulePath).href) as Record<string, unknown>
    exported = mod.run
  } catch (err) {
    post({ type: 'load-failed', message: `cannot import it: ${describeThrown(err)}` })
    return undefined
  }
  if (typeof exported !== 'function') {
    const found = exported === undefined ? 'it has no export named run' : `its run export is a ${typeof exported}, not a function`
    post({ type: 'load-failed', message: `${found}; a campaign module must export run(shard, ctx), e.g. export async function run (shard, ctx) { … }` })
    return undefined
  }
  post({ type: 'ready' })
  return exported as RunFunction
}

/** The message, and where it was thrown (the first stack frame), which is what the author needs first. */
function describeThrown (err: unknown): string {
  if (!(err instanceof Error)) return `threw a non-Error value: ${String(err)}`
  const text = err.name === 'Error' ? err.message : `${err.name}: ${err.message}`
  const frame = err.stack?.split('\n').find((line) => line.trimStart().startsWith('at '))?.trim()
  return frame === undefined ? text : `${text} (${frame})`
}
