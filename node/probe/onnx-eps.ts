import { z } from 'zod'
import { CapabilitySchema } from '../../protocols/membership/capabilities.ts'

/**
 * Shared by the ORT probe child and its parent: which execution providers to
 * try, and the JSON lines the child prints as it goes.
 */

/** Providers worth trying even when this onnxruntime-node build does not list them, per platform. */
const ALWAYS_TRY: Record<string, readonly string[]> = {
  linux: ['cuda', 'tensorrt', 'openvino', 'rocm'],
  win32: ['cuda', 'tensorrt', 'openvino', 'dml'],
  darwin: ['coreml']
}
/** Providers that exist for one OS only; elsewhere they are not tried at all. */
const ONLY_ON: Record<string, string> = { dml: 'win32', coreml: 'darwin' }

export function epKey (ep: string): string {
  return `onnx.ep.${ep.toLowerCase().replace(/[^a-z0-9_-]/g, '_')}`
}

/**
 * cpu first (it is the fallback everyone needs, so it must be reported even if
 * a later provider takes the child down) and webgpu last (it talks to graphics
 * drivers, the likeliest to hang or crash on a headless machine).
 */
export function onnxCandidates (platform: string, listed: readonly string[]): string[] {
  const all = new Set(['cpu', ...listed, ...ALWAYS_TRY[platform] ?? []])
  const tried = [...all].filter((ep) => ONLY_ON[ep] === undefined || ONLY_ON[ep] === platform)
  return [...tried.filter((ep) => ep !== 'webgpu'), ...tried.filter((ep) => ep === 'webgpu')]
}

export const ChildLineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('candidates'), eps: z.array(z.string()) }),
  z.object({ type: z.literal('result'), ep: z.string(), capability: CapabilitySchema }),
  z.object({ type: z.literal('done') })
])
export type ChildLine = z.infer<typeof ChildLineSchema>

/**
 * ORT_ENFORCE messages start with "<source file>:<line> <C++ signature> <condition> was false."
 * before the part a person can act on; keep that part.
 */
export function ortReason (message: string): string {
  const firstLine = message.trim().split('\n')[0] ?? ''
  const enforced = /^\S+:\d+ .* was false\. (.+)$/.exec(firstLine)
  return enforced?.[1] ?? firstLine.replace(/^\/\S+:\d+ /, '')
}
