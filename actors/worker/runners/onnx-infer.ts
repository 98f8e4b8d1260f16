import ort from 'onnxruntime-node'
import { InputDataError, openRowReader } from './onnx-data.ts'
import type { RunDone, RunRequest } from './onnx-protocol.ts'

/**
 * A shard's inference, in an ONNX worker thread (onnx-thread.ts): its rows
 * read from the data range and parsed into float32 batches, each batch run
 * through the session, the output values gathered in row order.
 */

/** session.run failed on a batch; the input was checked beforehand, so the cause may pass (memory, a device). */
export class ModelRunError extends Error {
  override name = 'ModelRunError'
  /** ORT's own message */
  readonly ortError: string
  constructor (message: string, ortError: string) {
    super(message)
    this.ortError = ortError
  }
}

type Values = RunDone['values']

/** The output values of every row of the shard, `perRow` per row; checks between batches whether to stop. */
export async function inferShard (session: ort.InferenceSession, request: RunRequest, signal: AbortSignal, progress: (fraction: number) => void): Promise<{ values: Values, perRow: number }> {
  const { workload, firstRow, rows: expected } = request
  const columns = workload.input.columns
  const width = columns.length
  const inputName = pick('input', workload.input.name, session.inputNames)
  const outputName = pick('output', workload.output.name, session.outputNames)
  checkInput(session, inputName, width, workload.batchSize)

  const reader = openRowReader(request.data, {
    format: workload.data.format,
    dataColumns: workload.data.columns,
    inputColumns: columns,
    firstRow
  })
  // no bigger than the shard: batchSize may be far larger than a small shard
  const batchSize = Math.max(1, Math.min(workload.batchSize, expected))
  const gathered = new Gathered(expected)
  try {
    const batch = new Float32Array(batchSize * width)
    for (;;) {
      signal.throwIfAborted()
      const n = await reader.fill(batch, batchSize)
      if (n === 0) break
      if (gathered.rows + n > expected) throw sliceMismatch('more than', expected, firstRow)
      const input = new ort.Tensor('float32', n === batchSize ? batch : batch.subarray(0, n * width), [n, width])
      let outputs: ort.InferenceSession.OnnxValueMapType
      try {
        outputs = await session.run({ [inputName]: input }, [outputName])
      } catch (err) {
        const at = firstRow + gathered.rows
        throw new ModelRunError(`the model failed on rows ${at}..${at + n - 1}: `, err instanceof Error ? err.message : String(err))
      }
      gathered.add(outputs[outputName], outputName, n)
      progress(gathered.rows / Math.max(1, expected))
      if (n < batchSize) break
    }
  } finally {
    reader.close()
  }
  if (gathered.rows !== expected) throw sliceMismatch(`${gathered.rows}, not`, expected, firstRow)
  return { values: gathered.values ?? [], perRow: gathered.perRow }
}

/** The output values of the batches so far, in one array of the output's own type, sized for the whole shard. */
class Gathered {
  rows = 0
  perRow = 1
  values: Values | undefined
  private readonly expected: number

  constructor (expected: number) {
    this.expected = expected
  }

  add (output: ort.Tensor | undefined, outputName: string, n: number): void {
    if (output === undefined) throw new InputDataError(`the model returned no '${outputName}' output`)
    const data = output.data as Values
    const perRow = data.length / n
    if (!Number.isInteger(perRow) || perRow === 0 || (this.values !== undefined && perRow !== this.perRow)) {
      throw new InputDataError(`the model output has ${data.length} values for ${n} rows (shape [${output.dims.join(', ')}]); expected the same number of values for every row`)
    }
    this.perRow = perRow
    this.values ??= ArrayBuffer.isView(data) ? new (data.constructor as TypedArrayOf)(this.expected * perRow) : []
    if (Array.isArray(this.values)) {
      for (let k = 0; k < data.length; k++) this.values.push(data[k] as string)
    } else {
      (this.values as unknown as TypedArray).set(data, this.rows * perRow)
    }
    this.rows += n
  }
}

/** what Float32Array, BigInt64Array and the like have in common here */
interface TypedArray {
  set: (from: ArrayLike<unknown>, offset: number) => void
}
type TypedArrayOf = new (length: number) => Values

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

function sliceMismatch (got: string, expected: number, firstRow: number): InputDataError {
  return new InputDataError(`the data slice holds ${got} ${expected} rows, the shard's rows [${firstRow}, ${firstRow + expected}); the slice and the shard table disagree`)
}
