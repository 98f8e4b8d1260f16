import { z } from 'zod'
import { LabelsSchema } from '../bridge/schema.ts'

/**
 * What one probe found. Every probe reports exactly one of these three; a probe
 * that fails is an `error` entry, never a missing key and never a crash.
 */
export const CapabilitySchema = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), info: z.record(z.string(), z.unknown()).optional() }),
  z.object({ status: z.literal('unavailable'), reason: z.string().max(2000) }),
  z.object({ status: z.literal('error'), message: z.string().max(2000) })
])
export type Capability = z.infer<typeof CapabilitySchema>

/**
 * Capability keys are vendor-qualified, lower case, dot separated:
 * `cpu.x86.avx512f`, `gpu.nvidia.cuda`, `npu.intel`, `onnx.ep.cuda`, `plugin.acme.fpga`.
 */
export const CAPABILITY_KEY = /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/
export const CapabilityKeySchema = z.string().max(128).regex(CAPABILITY_KEY, {
  message: 'capability keys are vendor-qualified and dot separated, e.g. "gpu.nvidia.cuda"'
})

export const HostInfoSchema = z.object({
  hostname: z.string().max(256),
  platform: z.string().max(64),
  arch: z.string().max(64),
  cpuModel: z.string().max(256),
  cpuVendor: z.string().max(128),
  cores: z.number().int().nonnegative(),
  physicalCores: z.number().int().nonnegative(),
  memoryBytes: z.number().nonnegative()
})
export type HostInfo = z.infer<typeof HostInfoSchema>

export const CapabilityReportSchema = z.object({
  /** epoch milliseconds when the probe finished */
  probedAt: z.number(),
  durationMs: z.number().nonnegative(),
  host: HostInfoSchema,
  capabilities: z.record(CapabilityKeySchema, CapabilitySchema),
  /** the node's labels (zp-node --label KEY=VALUE, bridges' bridge=slurm …); optional, so reports of older nodes still parse */
  labels: LabelsSchema.optional()
})
export type CapabilityReport = z.infer<typeof CapabilityReportSchema>
