import { availableParallelism } from 'node:os'
import ort from 'onnxruntime-node'
import type { ShardOutput } from '../../../protocols/campaign/shard.ts'
import type { Workload } from '../../../protocols/campaign/spec.ts'
import { ortReason } from '../../../node/probe/onnx-eps.ts'
import { InputDataError, openRowReader } from './onnx-data.ts'
import { ModelLoadError, OnnxSessions, providerPlan, type SessionChoice } from './onnx-sessions.ts'
import { progressLimiter } from './progress.ts'
import { errorText, shardLabel } from './shard-label.ts'
import { ShardFailure, type RunContext, type Runner, type RunnerEnvironment, type ShardTask } from './types.ts'

type OnnxWorkload = Extract<Workload, { kind: 'onnx' }>

/** the result field that holds a row's global index */
const ROW_FIELD = 'row'

export interface OnnxRunner extends Runner {
  stats: () => { sessionsCreated: number }
}

/**
 * `onnx` workloads: batch inference over a shard's rows of a data set. Each
 * result row is `{ row: <global row index>, [output.column]: value }`, the
 * value a number when the model gives one value per row, else an array.
 *
 * onnxruntime-node runs a batch synchronously on the calling thread (behind a
 * setImmediate), so a batch holds the node's event loop for as long as it
 * computes; between batches the loop runs. Keep batches in the milliseconds.
 */
export function createOnnxRunner (env: RunnerEnvironment): OnnxRunner {
  const sessions = new OnnxSessions({
    intraOpNumThreads: Math.max(1, Math.floor(availableParallelism() / Math.max(1, env.slots))),
    log: env.log
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
    try {
      const choice = await sessions.get(model, providerPlan(workload.executionProviders, env.capabilities()))
      ctx.signal.throwIfAborted()
      const rows = await infer(task, workload, choice, data, ctx)
      const { executionProvider, fallbackFrom, fallbackReason } = choice
      return { rows, info: fallbackFrom === undefined ? { executionProvider } : { executionProvider, fallbackFrom, fallbackReason } }
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason
      if (err instanceof ShardFailure) throw err
      if (err instanceof InputDataError || err instanceof ModelLoadError) throw new ShardFailure(`${label}: ${err.message}`, { retryable: false, cause: err })
      // e.g. the slice file went missing: a problem of this worker, not of the shard
      throw new ShardFailure(`${label}: ${errorText(err)}`, { retryable: true, cause: err })
    }
  }

  async function infer (task: ShardTask, workload: OnnxWorkload, choice: SessionChoice, data: NonNullable<ShardTask['files']['data']>, ctx: RunContext): Promise<unknown[]> {
    const { session } = choice
    const { shard } = task
    const label = shardLabel(task)
    const columns = workload.input.columns
    const width = columns.length
    const inputName = pick('input', workload.input.name, session.inputNames)
    const outputName = pick('output', workload.output.name, session.outputNames)
    const outputColumn = workload.output.column
    if (outputColumn === ROW_FIELD) throw new InputDataError(`output.column '${ROW_FIELD}' would overwrite the row index every result row carries; choose another name`)
    checkInput(session, inputName, width, workload.batchSize)

    const reader = openRowReader(data, {
      format: workload.data.format,
      dataColumns: workload.data.columns,
      inputColumns: columns,
      firstRow: shard.start
    })
    const expected = shard.end - shard.start
    // no bigger than the shard: batchSize may be far larger than a small shard
    const batchSize = Math.max(1, Math.min(workload.batchSize, expected))
    const rows: unknown[] = []
    const progress = progressLimiter(ctx.progress)
    try {
      const batch = new Float32Array(batchSize * width)
      for (;;) {
        ctx.signal.throwIfAborted()
        const n = await reader.fill(batch, batchSize)
        if (n === 0) break
        if (rows.length + n > expected) throw sliceMismatch('more than', expected, shard.start, shard.end)
        const input = new ort.Tensor('float32', n === batchSize ? batch : batch.subarray(0, n * width), [n, width])
        let outputs: ort.InferenceSession.OnnxValueMapType
        try {
          outputs = await session.run({ [inputName]: input }, [outputName])
        } catch (err) {
          // shapes and types were checked above, so what is left may be passing (memory, a device), hence retryable
          throw new ShardFailure(`${label}: the model failed on rows ${shard.start + rows.length}..${shard.start + rows.length + n - 1}: ${ortReason(errorText(err))}`, { retryable: true, cause: err })
        }
        collect(outputs[outputName], outputName, n, shard.start + rows.length, outputColumn, rows)
        progress.push(rows.length / Math.max(1, expected))
        if (n < batchSize) break
      }
    } finally {
      progress.stop()
      reader.close()
    }
    if (rows.length !== expected) throw sliceMismatch(`${rows.length}, not`, expected, shard.start, shard.end)
    return rows
  }

  return {
    run,
    close: async () => { await sessions.close() },
    stats: () => ({ sessionsCreated: sessions.sessionsCreated })
  }
}

function pick (kind: 'input' | 'output', name: string | undefined, names: readonly string[]): string {
  if (name === undefined) {
    const first = names[0]
    if (first === undefined) throw new InputDataError(`the model has no ${kind}s`)
    return first
  }
  if (!names.includes(name)) throw new InputDataError(`the model has no ${kind} named '${name}' (its ${kind}s: ${names.join(', ')})`)
  return name
}

/** Checks that the model input takes [rows, width] float32. */
function checkInput (session: ort.InferenceSession, inputName: string, width: number, batchSize: number): void {
  const meta = session.inputMetadata.find((m) => m.name === inputName)
  if (meta === undefined || !meta.isTensor) throw new InputDataError(`model input '${inputName}' is not a tensor; this runner feeds a float32 tensor [rows, columns]`)
  if (meta.type !== 'float32') throw new InputDataError(`model input '${inputName}' takes ${meta.type} tensors; this runner feeds float32`)
  const shape = meta.shape
  // an empty shape means the model does not say
  if (shape.length === 0) return
  const dims = `[${shape.join(', ')}]`
  if (shape.length !== 2) throw new InputDataError(`model input '${inputName}' has shape ${dims}; this runner feeds [rows, columns], one row of input.columns per data row`)
  const [rowsDim, widthDim] = shape
  if (typeof widthDim === 'number' && widthDim !== width) {
    throw new InputDataError(`model input '${inputName}' takes ${widthDim} values per row (shape ${dims}) but input.columns lists ${width}`)
  }
  if (typeof rowsDim === 'number' && rowsDim > 0 && rowsDim !== batchSize) {
    throw new InputDataError(`model input '${inputName}' takes exactly ${rowsDim} rows per run (shape ${dims}); set batchSize: ${rowsDim}`)
  }
}

/** Appends one result row per input row of the batch. */
function collect (output: ort.Tensor | undefined, outputName: string, n: number, firstRow: number, column: string, rows: unknown[]): void {
  if (output === undefined) throw new InputDataError(`the model returned no '${outputName}' output`)
  const data = output.data as ArrayLike<number | bigint | string | boolean>
  const perRow = data.length / n
  if (!Number.isInteger(perRow) || perRow === 0) {
    throw new InputDataError(`the model output has ${data.length} values for ${n} rows (shape [${output.dims.join(', ')}]); expected the same number of values for every row`)
  }
  const value = (k: number): unknown => {
    const v = data[k]
    return typeof v === 'bigint' ? Number(v) : v
  }
  for (let i = 0; i < n; i++) {
    const at = i * perRow
    const result = perRow === 1 ? value(at) : Array.from({ length: perRow }, (_, k) => value(at + k))
    rows.push({ [ROW_FIELD]: firstRow + i, [column]: result })
  }
}

function sliceMismatch (got: string, expected: number, start: number, end: number): InputDataError {
  return new InputDataError(`the data slice holds ${got} ${expected} rows, the shard's rows [${start}, ${end}); the slice and the shard table disagree`)
}
