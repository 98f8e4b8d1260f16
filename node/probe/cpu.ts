import os from 'node:os'
import si from 'systeminformation'
import type { HostInfo } from '../../protocols/membership/capabilities.ts'
import { flagCapabilities, archFamily } from './cpu-flags.ts'
import { errorMessage, failed, ok, type Capabilities } from './types.ts'

export interface HostProbeResult {
  host: HostInfo
  capabilities: Capabilities
}

/** What node:os alone can say; used as is when systeminformation fails or is too slow. */
export function baselineHost (): HostInfo {
  const cpus = os.cpus()
  return {
    hostname: os.hostname(),
    platform: process.platform,
    arch: process.arch,
    cpuModel: cpus[0]?.model.trim() ?? '',
    cpuVendor: '',
    cores: os.availableParallelism(),
    // 0 = unknown: node:os cannot tell physical from logical cores
    physicalCores: 0,
    memoryBytes: os.totalmem()
  }
}

export function cpuKey (arch: string = process.arch): string {
  return `cpu.${archFamily(arch)}`
}

/**
 * Host facts plus `cpu.<family>` and its flags. Each systeminformation call may
 * fail on its own; the host record then keeps the node:os value for that part.
 */
export async function probeHostAndCpu (): Promise<HostProbeResult> {
  const host = baselineHost()
  // not si.osInfo(): it runs `hostname -f` and more with execSync, stalling the node while it joins
  const [cpu, flags, mem] = await Promise.allSettled([si.cpu(), si.cpuFlags(), si.mem()])
  const key = cpuKey(host.arch)
  const capabilities: Capabilities = {}

  if (mem.status === 'fulfilled' && mem.value.total > 0) host.memoryBytes = mem.value.total
  if (cpu.status === 'fulfilled') {
    const c = cpu.value
    // os.cpus() carries the full "model name" line; si splits it into manufacturer + brand
    if (host.cpuModel === '') host.cpuModel = `${c.manufacturer} ${c.brand}`.trim()
    host.cpuVendor = c.vendor !== '' ? c.vendor : c.manufacturer
    if (c.cores > 0) host.cores = c.cores
    host.physicalCores = c.physicalCores
    const mhz = os.cpus()[0]?.speed ?? 0
    const speedGHz = c.speed > 0 ? c.speed : mhz > 0 ? Math.round(mhz / 10) / 100 : null
    capabilities[key] = ok({ model: host.cpuModel, vendor: host.cpuVendor, cores: host.cores, physicalCores: host.physicalCores, speedGHz })
  } else {
    capabilities[key] = failed(`systeminformation cpu() failed: ${errorMessage(cpu.reason)}`)
  }
  // an unreadable flag list comes back as '' and becomes error entries per flag
  Object.assign(capabilities, flagCapabilities(archFamily(host.arch), flags.status === 'fulfilled' ? flags.value : ''))
  return { host, capabilities }
}
