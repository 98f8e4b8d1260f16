/**
 * Child process of the ORT probe (see onnx.ts). A native execution provider can
 * hang or crash the process that loads it, so this runs apart from the node and
 * prints one JSON line per provider as soon as it is known: whatever it printed
 * before dying still counts. Not a module to import.
 */
import ort from 'onnxruntime-node'
import type { Capability } from '../../protocols/membership/capabilities.ts'
import { ADD_MODEL_DIMS, ADD_MODEL_EXPECTED, ADD_MODEL_INPUT, buildAddModel } from './onnx-model.ts'
import { onnxCandidates, ortReason, type ChildLine } from './onnx-eps.ts'

const emit = (line: ChildLine): void => { process.stdout.write(`${JSON.stringify(line)}\n`) }
const message = (err: unknown): string => err instanceof Error ? err.message : String(err)
const round = (ms: number): number => Math.round(ms * 10) / 10

// ORT's own log lines (which shared library failed to load) go to stderr, which the parent logs at debug
ort.env.logLevel = 'error'
const listed = ort.listSupportedBackends()
const bundled = new Map(listed.map((b) => [b.name, b.bundled]))
const candidates = onnxCandidates(process.platform, listed.map((b) => b.name))
emit({ type: 'candidates', eps: candidates })

const model = buildAddModel()
for (const ep of candidates) emit({ type: 'result', ep, capability: await tryProvider(ep) })
emit({ type: 'done' })

async function tryProvider (ep: string): Promise<Capability> {
  const started = performance.now()
  let session: ort.InferenceSession
  try {
    session = await ort.InferenceSession.create(model, { executionProviders: [ep] })
  } catch (err) {
    const reason = ortReason(message(err)).slice(0, 300)
    const version = `onnxruntime-node ${ort.env.versions.node ?? ''}`
    const hint = bundled.get(ep) === false ? ` (the ${ep} provider is not bundled with ${version}; it needs its own runtime libraries)`
      : bundled.has(ep) ? ''
        : ` (${version} for ${process.platform} has no ${ep} provider)`
    return { status: 'unavailable', reason: `${reason}${hint}` }
  }
  const created = performance.now()
  try {
    const out = await session.run({ x: new ort.Tensor('float32', ADD_MODEL_INPUT, [...ADD_MODEL_DIMS]) })
    const y = Array.from(out.y?.data as ArrayLike<number> | undefined ?? [])
    const expected = Array.from(ADD_MODEL_EXPECTED)
    if (y.length !== expected.length || y.some((v, i) => Math.abs(v - (expected[i] ?? NaN)) > 1e-6)) {
      return { status: 'error', message: `${ep} ran the probe model but computed [${y.join(', ')}] instead of [${expected.join(', ')}]` }
    }
    return {
      status: 'ok',
      info: { bundled: bundled.get(ep) ?? null, ortVersion: ort.env.versions.node ?? null, createMs: round(created - started), runMs: round(performance.now() - created) }
    }
  } catch (err) {
    return { status: 'error', message: `${ep} created a session but running the probe model failed: ${ortReason(message(err)).slice(0, 300)}` }
  } finally {
    await session.release()
  }
}
