/**
 * Worker thread of the ONNX runner (onnx-runner.ts). It loads
 * onnxruntime-node, opens one session for its model and provider plan, then
 * runs shards on it, one at a time, for as long as the parent keeps it: it
 * reads and parses the shard's data range itself, runs the batches (ORT's
 * session.run blocks the calling thread, here this one, not the node's) and
 * returns the output values. Not a module to import. It imports nothing that
 * the work does not need: thread start-up is on the path of every new thread.
 */
import { parentPort, workerData } from 'node:worker_threads'
import ort from 'onnxruntime-node'
import { InputDataError } from './onnx-data.ts'
import { inferShard, ModelRunError } from './onnx-infer.ts'
import type { FromThread, OnnxThreadData, RunRequest, ToThread } from './onnx-protocol.ts'
import { progressLimiter } from './progress.ts'
import { errorText } from './shard-label.ts'

if (parentPort === null) throw new Error('onnx-thread.ts runs as a worker thread of the ONNX runner, not on its own')
const port = parentPort
const post = (message: FromThread, transfer?: ArrayBuffer[]): void => { port.postMessage(message, transfer) }
const { model, plan, intraOpNumThreads } = workerData as OnnxThreadData

const aborts = new Map<number, AbortController>()
// listening from the start: the parent may end this thread while its session is being created
port.on('message', (message: ToThread) => {
  // JavaScript runs here, so this thread is inside no ORT call: the one safe place to end it (ThreadKind.stop)
  if (message.type === 'exit') process.exit(0)
  else if (message.type === 'run') void run(message)
  // the parent settles an aborted run with its own reason: this one is never seen
  else aborts.get(message.id)?.abort()
})
// runs arrive only once the thread has said it is ready, i.e. with a session
const session = open()

/** The session on the first provider of the plan that loads the model; load-failed when not even cpu does. */
async function open (): Promise<ort.InferenceSession | undefined> {
  const failures: Array<{ ep: string, message: string }> = []
  for (const { ep, skip } of plan) {
    if (skip !== undefined) continue
    try {
      const created = await ort.InferenceSession.create(model, { executionProviders: [ep], intraOpNumThreads, interOpNumThreads: 1 })
      post({ type: 'ready', executionProvider: ep, failures })
      return created
    } catch (err) {
      // a provider that is not bundled throws instead of falling back by itself (TOOLCHAIN.md)
      failures.push({ ep, message: errorText(err) })
    }
  }
  post({ type: 'load-failed', message: failures.at(-1)?.message ?? 'no provider to try' })
  return undefined
}

async function run (request: RunRequest): Promise<void> {
  const { id } = request
  const abort = new AbortController()
  aborts.set(id, abort)
  const progress = progressLimiter((fraction) => { post({ type: 'progress', id, fraction }) })
  try {
    const loaded = await session
    if (loaded === undefined) throw new Error('a run reached an ONNX thread without a session')
    const { values, perRow } = await inferShard(loaded, request, abort.signal, progress.push)
    post({ type: 'done', id, values, perRow }, ArrayBuffer.isView(values) ? [values.buffer as ArrayBuffer] : [])
  } catch (err) {
    if (err instanceof ModelRunError) post({ type: 'failed', id, message: err.message, retryable: true, ortError: err.ortError })
    // bad data or a model unfit for the workload: the same on every retry
    else if (err instanceof InputDataError) post({ type: 'failed', id, message: err.message, retryable: false })
    // e.g. the slice file went missing: a problem of this worker, not of the shard
    else post({ type: 'failed', id, message: errorText(err), retryable: true })
  } finally {
    progress.stop()
    aborts.delete(id)
  }
}
