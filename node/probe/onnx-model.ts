import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

/** A tensor dimension: a size, or a name for a symbolic one (a batch dimension, say). */
export type Dim = number | string

export function valueInfo (name: string, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: dims.map(d => typeof d === 'number' ? { dimValue: d } : { dimParam: d }) } } }
  }
}

export function floatTensor (name: string, dims: number[], values: ArrayLike<number>): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(values) }
}

/** A float32 model (IR 8, opset 13) built in memory: for the probe, the examples and the tests, no files needed. */
export function encodeModel (graph: {
  name: string
  producer: string
  node: onnxProto.onnx.INodeProto[]
  initializer?: onnxProto.onnx.ITensorProto[]
  input: onnxProto.onnx.IValueInfoProto[]
  output: onnxProto.onnx.IValueInfoProto[]
}): Uint8Array {
  const { producer, ...rest } = graph
  return onnx.ModelProto.encode({ irVersion: 8, producerName: producer, opsetImport: [{ domain: '', version: 13 }], graph: rest }).finish()
}

export const ADD_MODEL_INPUT = Float32Array.from([1, 2, 3, 4])
export const ADD_MODEL_EXPECTED = ADD_MODEL_INPUT.map((v) => v + v)
export const ADD_MODEL_DIMS = [1, 4] as const

/** The smallest model every provider can run: one Add node, y = x + x over float32 [1,4]. */
export function buildAddModel (): Uint8Array {
  return encodeModel({
    name: 'probe_add',
    producer: 'zp-probe',
    node: [{ opType: 'Add', input: ['x', 'x'], output: ['y'] }],
    input: [valueInfo('x', [...ADD_MODEL_DIMS])],
    output: [valueInfo('y', [...ADD_MODEL_DIMS])]
  })
}
