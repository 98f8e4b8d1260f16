import type { Capability, CapabilityReport } from '../../protocols/membership/capabilities.ts'

function deviceCount (capability: Capability): number | undefined {
  if (capability.status !== 'ok') return undefined
  const count = capability.info?.count
  if (typeof count === 'number') return count
  const devices = capability.info?.devices
  return Array.isArray(devices) ? devices.length : undefined
}

/**
 * Short labels for a peer table, only for what works (`ok`):
 * e.g. ['avx512', 'amx', 'cuda×2', 'npu.intel', 'onnx:cpu,cuda', 'fpga.acme.u250'].
 * CPU flags collapse to the families that decide where work runs well; other
 * keys (plugins) appear verbatim.
 */
export function summarizeAccelerators (report: CapabilityReport): string[] {
  const working = Object.entries(report.capabilities).filter(([, c]) => c.status === 'ok')
  const has = (key: string): boolean => report.capabilities[key]?.status === 'ok'
  const cpu: string[] = []
  if (has('cpu.x86.avx512f')) cpu.push('avx512')
  else if (has('cpu.x86.avx2')) cpu.push('avx2')
  if (working.some(([key]) => key.startsWith('cpu.x86.amx'))) cpu.push('amx')
  if (has('cpu.arm.sve2')) cpu.push('sve2')
  else if (has('cpu.arm.sve')) cpu.push('sve')

  const gpu: string[] = []
  const npu: string[] = []
  const eps: string[] = []
  const other: string[] = []
  for (const [key, capability] of working) {
    const parts = key.split('.')
    if (parts[0] === 'cpu') continue
    if (parts[0] === 'gpu' && parts.length === 2) continue // a controller alone says nothing about compute APIs
    if (parts[0] === 'gpu' && parts.length === 3) {
      const count = deviceCount(capability)
      gpu.push(count === undefined ? `${parts[2]}` : `${parts[2]}×${count}`)
    } else if (parts[0] === 'npu') {
      npu.push(key)
    } else if (key.startsWith('onnx.ep.') && parts.length === 3) {
      eps.push(parts[2] ?? '')
    } else {
      other.push(key)
    }
  }
  return [...cpu, ...gpu, ...npu, ...(eps.length > 0 ? [`onnx:${eps.join(',')}`] : []), ...other]
}
