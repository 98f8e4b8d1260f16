import type { CapabilityReport } from '../../../protocols/membership/capabilities.ts'
import { epKey, ortReason } from '../../../node/probe/onnx-eps.ts'
import type { SessionReady } from './onnx-protocol.ts'

/**
 * Providers a worker picks on its own, best first, when the campaign names
 * none: GPU providers first. TensorRT comes after the plain GPU ones because
 * it builds an engine per input shape (minutes for a big model, and again for
 * a shard's shorter last batch), which pays only when asked for. OpenVINO
 * speeds up Intel CPUs and iGPUs, so it still beats plain cpu. WebGPU is
 * never picked by default: it drives graphics stacks that hang or crash on
 * headless machines, so a campaign must ask for it by name.
 */
const DEFAULT_EP_RANK = ['cuda', 'rocm', 'migraphx', 'dml', 'coreml', 'tensorrt', 'openvino'] as const

export type ProviderPlan = ReadonlyArray<{ ep: string, skip?: string }>

/** What a shard's info says about its provider. */
export type ProviderInfo = {
  executionProvider: string
  /** the provider that was wanted but could not be used */
  fallbackFrom?: string
  fallbackReason?: string
}

/**
 * The providers to try for a campaign, best first (cpu, the fallback, is
 * always tried last). A campaign's own list is used as given, except the
 * providers this node's probe found unusable: those are skipped with the
 * probe's reason, rather than loaded into the node's own process to fail (or
 * worse) again.
 */
export function providerPlan (requested: readonly string[] | undefined, report: CapabilityReport | null): ProviderPlan {
  const caps = report?.capabilities ?? {}
  const usable = (ep: string): boolean => caps[epKey(ep)]?.status === 'ok'
  const wanted = requested?.map((ep) => ep.toLowerCase()) ?? DEFAULT_EP_RANK.filter(usable)
  const plan: Array<{ ep: string, skip?: string }> = []
  for (const ep of new Set(wanted)) {
    if (ep === 'cpu') break
    const cap = caps[epKey(ep)]
    const skip = cap === undefined || cap.status === 'ok' ? undefined
      : `this node's probe found ${epKey(ep)} ${cap.status}: ${cap.status === 'unavailable' ? cap.reason : cap.message}`
    plan.push(skip === undefined ? { ep } : { ep, skip })
  }
  plan.push({ ep: 'cpu' })
  return plan
}

/** The provider a session runs on and, when it is not the plan's first, why each one before it was not used. */
export function providerInfo (plan: ProviderPlan, ready: SessionReady): ProviderInfo {
  const { executionProvider } = ready
  const wanted = plan[0]?.ep ?? executionProvider
  if (executionProvider === wanted) return { executionProvider }
  const reasons: string[] = []
  for (const { ep, skip } of plan) {
    if (ep === executionProvider) break
    reasons.push(`${ep}: ${skip ?? ortReason(ready.failures.find((f) => f.ep === ep)?.message ?? 'not tried')}`)
  }
  return { executionProvider, fallbackFrom: wanted, fallbackReason: reasons.join('; ') }
}

/** Why not even the plan's last provider (cpu) could load the model; `message` is ORT's. */
export function modelLoadFailure (model: string, plan: ProviderPlan, message: string): string {
  return `cannot load the model ${model}: ${plan.at(-1)?.ep ?? 'cpu'}: ${ortReason(message)}`
}
