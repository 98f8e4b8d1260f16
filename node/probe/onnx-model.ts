import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

export const ADD_MODEL_INPUT = Float32Array.from([1, 2, 3, 4])
export const ADD_MODEL_EXPECTED = ADD_MODEL_INPUT.map((v) => v + v)
export const ADD_MODEL_DIMS = [1, 4] as const

/**
 * The smallest model every provider can run: one Add node, y = x + x over
 * float32 [1,4] (IR 8, opset 13). Built in memory so the probe needs no files.
 */
export function buildAddModel (): Uint8Array {
  const tensor = (name: string): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: ADD_MODEL_DIMS.map((dimValue) => ({ dimValue })) } } }
  })
  return onnx.ModelProto.encode({
    irVersion: 8,
    producerName: 'zp-probe',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'probe_add',
      node: [{ opType: 'Add', input: ['x', 'x'], output: ['y'] }],
      input: [tensor('x')],
      output: [tensor('y')]
    }
  }).finish()
}
