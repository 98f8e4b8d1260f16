import si from 'systeminformation'
import { ok, unavailable, type Capabilities } from './types.ts'

export const GPU_VENDORS = [
  { key: 'gpu.nvidia', label: 'NVIDIA', match: /nvidia/i },
  { key: 'gpu.amd', label: 'AMD', match: /\bamd\b|advanced micro devices|\bati\b/i },
  { key: 'gpu.intel', label: 'Intel', match: /intel/i }
] as const

export interface GraphicsController {
  vendor: string
  model: string
  vram: number | null
}

/** Groups graphics controllers by vendor; other vendors (BMC video such as ASPEED or Matrox) are ignored. */
export function gpuVendorCapabilities (controllers: readonly GraphicsController[]): Capabilities {
  const caps: Capabilities = {}
  for (const vendor of GPU_VENDORS) {
    const devices = controllers
      .filter((c) => vendor.match.test(c.vendor) || vendor.match.test(c.model))
      .map((c) => ({ model: c.model, vramMB: c.vram }))
    caps[vendor.key] = devices.length > 0 ? ok({ devices }) : unavailable(`no ${vendor.label} graphics controller found`)
  }
  return caps
}

export async function probeGpuControllers (): Promise<Capabilities> {
  const { controllers } = await si.graphics()
  return gpuVendorCapabilities(controllers)
}
