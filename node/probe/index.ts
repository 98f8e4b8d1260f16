import { silentLogger, type Logger } from '../logger.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { baselineHost, cpuKey, probeHostAndCpu, type HostProbeResult } from './cpu.ts'
import { CUDA_KEY, probeCuda } from './cuda.ts'
import { GPU_VENDORS, probeGpuControllers } from './gpu.ts'
import { NPU_INTEL_KEY, probeIntelNpu } from './npu.ts'
import { probeOnnx } from './onnx.ts'
import { mergePluginResults, pluginErrorKey, probePlugin } from './plugins.ts'
import { probeRocm, ROCM_KEY } from './rocm.ts'
import { guardedProbe, withTimeout } from './timeout.ts'
import { errorMessage, failed, type Capabilities } from './types.ts'

export { summarizeAccelerators } from './summary.ts'
export { formatProbeTable } from './table.ts'

export interface ProbeOptions {
  /** paths to ES modules exporting probe(); relative paths resolve against the working directory */
  plugins?: string[]
  /** per probe, default 15000 */
  timeoutMs?: number
  /** aborting rejects probeCapabilities with the signal's reason and kills probe child processes */
  signal?: AbortSignal
  logger?: Logger
  /** default true; false skips ORT execution provider probing (fast tests) */
  onnx?: boolean
}

const DEFAULT_TIMEOUT_MS = 15_000

/**
 * Finds what this machine can do: host facts plus one capability entry per
 * probe key. Probes run in parallel, each under its own timeout; a probe that
 * fails or times out shows up as an `error` entry, never as a throw or a gap.
 */
export async function probeCapabilities (opts: ProbeOptions = {}): Promise<CapabilityReport> {
  const started = performance.now()
  const { signal } = opts
  signal?.throwIfAborted()
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const logger = (opts.logger ?? silentLogger()).child({ component: 'probe' })

  const timed = async <T>(name: string, work: Promise<T>): Promise<T> => {
    try {
      return await work
    } finally {
      logger.debug({ probe: name, elapsedMs: Math.round(performance.now() - started) }, 'probe finished')
    }
  }

  const host = timed('host', withTimeout(probeHostAndCpu, timeoutMs, signal).catch((err: unknown): HostProbeResult => {
    if (signal?.aborted === true) throw signal.reason
    return { host: baselineHost(), capabilities: { [cpuKey()]: failed(errorMessage(err)) } }
  }))
  const builtins: Array<Promise<Capabilities>> = [
    timed('gpu', guardedProbe(GPU_VENDORS.map((v) => v.key), probeGpuControllers, timeoutMs, signal)),
    timed('cuda', guardedProbe([CUDA_KEY], async (s) => await probeCuda(s), timeoutMs, signal)),
    timed('rocm', guardedProbe([ROCM_KEY], async (s) => await probeRocm(s), timeoutMs, signal)),
    timed('npu', guardedProbe([NPU_INTEL_KEY], async () => await probeIntelNpu(), timeoutMs, signal)),
    // the ORT probe keeps the providers reported before a timeout, so it runs its own clock
    timed('onnx', opts.onnx === false ? Promise.resolve({}) : probeOnnx({ timeoutMs, signal, logger }))
  ]
  const errorKeys = new Set<string>()
  const plugins = (opts.plugins ?? []).map((file) => {
    const errorKey = pluginErrorKey(file, errorKeys)
    errorKeys.add(errorKey)
    return timed(`plugin ${file}`, probePlugin(file, errorKey, timeoutMs, signal))
  })

  const [hostResult, builtinResults, pluginResults] = await Promise.all([host, Promise.all(builtins), Promise.all(plugins)])
  const capabilities = mergePluginResults(Object.assign({}, hostResult.capabilities, ...builtinResults), pluginResults)

  for (const [key, capability] of Object.entries(capabilities)) {
    if (capability.status === 'error') logger.warn({ key, message: capability.message }, 'capability probe failed')
  }
  const durationMs = Math.round((performance.now() - started) * 10) / 10
  logger.info({ durationMs, capabilities: Object.keys(capabilities).length }, 'capability probe done')
  return { probedAt: Date.now(), durationMs, host: hostResult.host, capabilities }
}
