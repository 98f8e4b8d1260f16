/**
 * Builds the batch-inference example: a small MLP as model.onnx and a data
 * set data.csv to run it over, with an `expected` column the campaign's
 * correctness report checks every prediction against.
 *
 *   npx node examples/onnx-batch/build.ts [--rows 20000] [--out DIR] [--seed 1] [--hidden 64]
 *
 * The model is features[n, 32] → Gemm → Tanh → Gemm → prediction[n, 1]
 * (IR 8, opset 13) with weights from a seeded PRNG. `expected` is an
 * independent plain-JS forward pass of the same network, not ONNX Runtime.
 * The default output is this folder, next to campaign.yaml; elsewhere, a copy
 * of campaign.yaml is written beside the files so `zp submit DIR/campaign.yaml`
 * finds them.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { encodeModel as encodeOnnx, floatTensor, valueInfo } from '../../node/probe/onnx-model.ts'


/** the input width; campaign.yaml lists these columns, f0 … f31 */
export const FEATURES = 32

export interface OnnxExampleOptions {
  /** data rows (default 20000) */
  rows?: number
  /** output folder (default: this example's folder) */
  dir?: string
  /** weights and data come from this seed (default 1) */
  seed?: number
  /** hidden units (default 64) */
  hidden?: number
}

export interface OnnxExample {
  dir: string
  model: string
  data: string
  campaign: string
  rows: number
  hidden: number
}

interface Mlp {
  hidden: number
  /** [FEATURES][hidden], row-major: w1[i * hidden + j] */
  w1: Float32Array
  b1: Float32Array
  /** [hidden][1] */
  w2: Float32Array
  b2: Float32Array
}

export async function buildOnnxExample (opts: OnnxExampleOptions = {}): Promise<OnnxExample> {
  const rows = opts.rows ?? 20_000
  const hidden = opts.hidden ?? 64
  const dir = resolve(opts.dir ?? import.meta.dirname)
  if (!Number.isSafeInteger(rows) || rows < 1) throw new Error(`rows must be a positive integer, not ${rows}`)
  if (!Number.isSafeInteger(hidden) || hidden < 1) throw new Error(`hidden must be a positive integer, not ${hidden}`)
  const random = mulberry32(opts.seed ?? 1)
  const uniform = (a: number): number => (2 * random() - 1) * a
  // Glorot-uniform weights keep the tanh layer out of saturation, so the output varies with the input
  const layer = (n: number, a: number): Float32Array => Float32Array.from({ length: n }, () => uniform(a))
  const mlp: Mlp = {
    hidden,
    w1: layer(FEATURES * hidden, Math.sqrt(6 / (FEATURES + hidden))),
    b1: layer(hidden, 0.1),
    w2: layer(hidden, Math.sqrt(6 / (hidden + 1))),
    b2: layer(1, 0.1)
  }

  const header = ['id', ...Array.from({ length: FEATURES }, (_, i) => `f${i}`), 'expected'].join(',')
  const lines = [header]
  const x = new Float32Array(FEATURES)
  const fields = new Array<string>(FEATURES)
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < FEATURES; i++) {
      // the reference sees exactly the float32 that ONNX Runtime will parse from the text
      fields[i] = uniform(1).toFixed(4)
      x[i] = Number(fields[i])
    }
    lines.push(`${r},${fields.join(',')},${forward(mlp, x)}`)
  }

  await mkdir(dir, { recursive: true })
  const out: OnnxExample = { dir, model: join(dir, 'model.onnx'), data: join(dir, 'data.csv'), campaign: join(dir, 'campaign.yaml'), rows, hidden }
  await writeFile(out.model, encodeModel(mlp))
  await writeFile(out.data, lines.join('\n') + '\n')
  const campaign = join(import.meta.dirname, 'campaign.yaml')
  if (out.campaign !== campaign) await copyFile(campaign, out.campaign)
  return out
}

/**
 * The network in plain JS with float32 semantics where ONNX Runtime has
 * them: inputs, weights and every tensor between nodes are float32. Each dot
 * product is summed in float64 (products of float32 are exact there) and
 * rounded once, so this is the correctly rounded layer output; ORT's float32
 * accumulation and its Tanh approximation differ from it by ~1e-6, far inside
 * the campaign's tolerance of 1e-4.
 */
function forward (mlp: Mlp, x: Float32Array): number {
  const { hidden, w1, b1, w2, b2 } = mlp
  let y = b2[0]!
  for (let j = 0; j < hidden; j++) {
    let sum = b1[j]!
    for (let i = 0; i < FEATURES; i++) sum += x[i]! * w1[i * hidden + j]!
    y += Math.fround(Math.tanh(Math.fround(sum))) * w2[j]!
  }
  return Math.fround(y)
}

function encodeModel (mlp: Mlp): Uint8Array {
  return encodeOnnx({
    name: 'mlp',
    producer: 'zp-examples',
    node: [
      { opType: 'Gemm', input: ['features', 'w1', 'b1'], output: ['z1'] },
      { opType: 'Tanh', input: ['z1'], output: ['h1'] },
      { opType: 'Gemm', input: ['h1', 'w2', 'b2'], output: ['prediction'] }
    ],
    initializer: [
      floatTensor('w1', [FEATURES, mlp.hidden], mlp.w1),
      floatTensor('b1', [mlp.hidden], mlp.b1),
      floatTensor('w2', [mlp.hidden, 1], mlp.w2),
      floatTensor('b2', [1], mlp.b2)
    ],
    // a symbolic batch dimension, as exported models have it: the runner picks the batch size
    input: [valueInfo('features', ['n', FEATURES])],
    output: [valueInfo('prediction', ['n', 1])]
  })
}

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1); plenty for synthetic weights and data. */
function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { rows: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, hidden: { type: 'string' } }
  })
  const int = (name: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined
    if (!/^-?\d+$/.test(text)) throw new Error(`--${name} takes an integer, not '${text}'`)
    return Number(text)
  }
  try {
    const started = performance.now()
    const built = await buildOnnxExample({ rows: int('rows', values.rows), dir: values.out, seed: int('seed', values.seed), hidden: int('hidden', values.hidden) })
    const ms = Math.round(performance.now() - started)
    process.stdout.write(`wrote ${built.model} and ${built.data} (${built.rows} rows) in ${ms} ms\nrun it: npx zp submit ${built.campaign} --wait\n`)
  } catch (err) {
    process.stderr.write(`build: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
