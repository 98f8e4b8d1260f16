import { createReadStream } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { CsvCursor } from '../protocols/campaign/csv.ts'

// The onnx suite's data set, and the raw ONNX Runtime pipeline the mesh is compared with.

/** what the worker's row reader reads at a time (actors/worker/runners/onnx-data.ts) */
const CHUNK_BYTES = 64 * 1024
const LINES_PER_WRITE = 10_000

/**
 * Writes a CSV of `rows` rows: the header and data lines of `sample` (the
 * example's data.csv) over and over, the id column counting from `firstId`.
 * A different firstId makes different bytes, so no node finds a run's blobs
 * or slices in its store from an earlier run.
 */
export async function writeDataSet (sample: string, file: string, rows: number, firstId: number): Promise<number> {
  const [header, ...lines] = (await readFile(sample, 'utf8')).trimEnd().split('\n')
  // everything after the id
  const tails = lines.map(l => l.slice(l.indexOf(',')))
  const fh = await open(file, 'w')
  let bytes = 0
  try {
    const write = async (text: string): Promise<void> => { bytes += (await fh.write(text)).bytesWritten }
    await write(header + '\n')
    for (let r = 0; r < rows; r += LINES_PER_WRITE) {
      const block: string[] = []
      for (let i = r; i < Math.min(rows, r + LINES_PER_WRITE); i++) block.push(`${firstId + i}${tails[i % tails.length]}\n`)
      await write(block.join(''))
    }
  } finally {
    await fh.close()
  }
  return bytes
}

/**
 * Reads a CSV with a header row through the worker's parser (CsvCursor, fed
 * 64 KiB chunks, as the worker's row reader does), filling `batch` with the
 * values of `columns`, row-major. Yields the row count of each full batch,
 * then of the last, partial one.
 */
export async function * csvBatches (file: string, columns: readonly string[], batch: Float32Array): AsyncGenerator<number> {
  const width = columns.length
  const rowsPerBatch = batch.length / width
  const cursor = new CsvCursor()
  let indexes: number[] | undefined
  let n = 0
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: CHUNK_BYTES })
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<string>
  try {
    for (let last = false; !last;) {
      const step = await chunks.next()
      last = step.done === true
      cursor.feed(last ? '' : step.value, last)
      while (cursor.next()) {
        if (indexes == null) {
          const header = Array.from({ length: cursor.fieldCount }, (_, i) => cursor.field(i))
          indexes = columns.map(c => header.indexOf(c))
          if (indexes.includes(-1)) throw new Error(`${file} lacks some of the columns ${columns.join(', ')}`)
          continue
        }
        for (let j = 0; j < width; j++) {
          const value = cursor.number(indexes[j]!)
          if (Number.isNaN(value)) throw new Error(`${file} line ${cursor.line}: column ${columns[j]} is not a number`)
          batch[n * width + j] = value
        }
        if (++n === rowsPerBatch) {
          yield n
          n = 0
        }
      }
    }
    if (n > 0) yield n
  } finally {
    stream.destroy()
  }
}

export interface OnnxIo {
  input: string
  output: string
  columns: readonly string[]
  batchSize: number
}

/**
 * What a user would otherwise run in one process: read and parse the CSV,
 * infer batch by batch, keep every prediction. Resolves to the rows done.
 */
export async function rawPipeline (session: ort.InferenceSession, file: string, rows: number, io: OnnxIo): Promise<number> {
  const width = io.columns.length
  const batch = new Float32Array(io.batchSize * width)
  const predictions = new Float32Array(rows)
  let done = 0
  for await (const n of csvBatches(file, io.columns, batch)) {
    const input = new ort.Tensor('float32', n === io.batchSize ? batch : batch.subarray(0, n * width), [n, width])
    const out = await session.run({ [io.input]: input }, [io.output])
    predictions.set(out[io.output]!.data as Float32Array, done)
    done += n
  }
  return done
}

/** The data set's input as ready tensors, a batch each, for inference alone. */
export async function prebuiltTensors (file: string, io: OnnxIo): Promise<ort.Tensor[]> {
  const width = io.columns.length
  const batch = new Float32Array(io.batchSize * width)
  const tensors: ort.Tensor[] = []
  for await (const n of csvBatches(file, io.columns, batch)) tensors.push(new ort.Tensor('float32', batch.slice(0, n * width), [n, width]))
  return tensors
}
