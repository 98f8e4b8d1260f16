import ort from 'onnxruntime-node'
import type { Logger } from 'pino'
import type { CapabilityReport } from '../../../protocols/membership/capabilities.ts'
import { epKey, ortReason } from '../../../node/probe/onnx-eps.ts'
import { errorText } from './shard-label.ts'

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

export interface SessionChoice {
  session: ort.InferenceSession
  executionProvider: string
  /** the provider that was wanted but could not be used */
  fallbackFrom?: string
  fallbackReason?: string
}

/** The model cannot be loaded even on cpu: a bad model file, the same on every retry. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError'
}

/**
 * The providers to try for a campaign, best first (cpu, the fallback, is
 * always tried last). A campaign's own list is used as given, except the
 * providers this node's probe found unusable: those are skipped with the
 * probe's reason, rather than loaded into the node's own process to fail (or
 * worse) again.
 */
export function providerPlan (requested: readonly string[] | undefined, report: CapabilityReport | null): Array<{ ep: string, skip?: string }> {
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

/**
 * ORT sessions, one per (model file, provider plan), created on first use and
 * shared by every shard after; concurrent first requests share one creation.
 *
 * intraOpNumThreads: a node runs `slots` shards at once, of any workload
 * kind, so each session gets its share of the cores, max(1, floor(cores /
 * slots)), rather than ORT's default of all of them per session, which
 * oversubscribes the machine as soon as two shards run together.
 */
export class OnnxSessions {
  private readonly sessions = new Map<string, Promise<SessionChoice>>()
  private readonly intraOpNumThreads: number
  private readonly log: Logger
  private created = 0

  constructor (opts: { intraOpNumThreads: number, log: Logger }) {
    this.intraOpNumThreads = opts.intraOpNumThreads
    this.log = opts.log
  }

  /** sessions created so far: a reused one does not count again */
  get sessionsCreated (): number {
    return this.created
  }

  async get (modelPath: string, plan: ReadonlyArray<{ ep: string, skip?: string }>): Promise<SessionChoice> {
    const key = `${modelPath}\0${plan.map((step) => step.ep).join(',')}`
    let choice = this.sessions.get(key)
    if (choice === undefined) {
      choice = this.create(modelPath, plan)
      this.sessions.set(key, choice)
      // a failed creation is not kept: the next shard tries again (and gets the same clear error if the model is bad)
      choice.catch(() => { if (this.sessions.get(key) === choice) this.sessions.delete(key) })
    }
    return await choice
  }

  async close (): Promise<void> {
    const all = [...this.sessions.values()]
    this.sessions.clear()
    for (const settled of await Promise.allSettled(all)) {
      if (settled.status === 'fulfilled') await settled.value.session.release()
    }
  }

  private async create (modelPath: string, plan: ReadonlyArray<{ ep: string, skip?: string }>): Promise<SessionChoice> {
    const wanted = plan[0]?.ep ?? 'cpu'
    const reasons: string[] = []
    for (const { ep, skip } of plan) {
      if (skip !== undefined) {
        reasons.push(`${ep}: ${skip}`)
        continue
      }
      try {
        const session = await ort.InferenceSession.create(modelPath, {
          executionProviders: [ep],
          intraOpNumThreads: this.intraOpNumThreads,
          interOpNumThreads: 1
        })
        this.created++
        if (reasons.length === 0) return { session, executionProvider: ep }
        const fallbackReason = reasons.join('; ')
        this.log.warn({ model: modelPath, wanted, executionProvider: ep, reason: fallbackReason }, 'ONNX execution provider unusable; fell back')
        return { session, executionProvider: ep, fallbackFrom: wanted, fallbackReason }
      } catch (err) {
        // a provider that is not bundled throws instead of falling back by itself (TOOLCHAIN.md)
        reasons.push(`${ep}: ${ortReason(errorText(err))}`)
      }
    }
    throw new ModelLoadError(`cannot load the model ${modelPath}: ${reasons.at(-1) ?? 'no provider to try'}`)
  }
}
