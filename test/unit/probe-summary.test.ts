import { describe, expect, it } from 'vitest'
import { formatProbeTable, summarizeAccelerators } from '../../node/probe/index.ts'
import type { Capability, CapabilityReport } from '../../protocols/membership/capabilities.ts'

const okay: Capability = { status: 'ok' }
const report = (capabilities: Record<string, Capability>): CapabilityReport => ({
  probedAt: 0,
  durationMs: 812.4,
  host: { hostname: 'lab-3', platform: 'linux', arch: 'x64', cpuModel: 'Intel Xeon w9-3495X', cpuVendor: 'GenuineIntel', cores: 112, physicalCores: 56, memoryBytes: 512 * 2 ** 30 },
  capabilities
})

const workstation = report({
  'cpu.x86': { status: 'ok', info: { model: 'Intel Xeon w9-3495X', cores: 112, speedGHz: null } },
  'cpu.x86.avx2': okay,
  'cpu.x86.avx512f': okay,
  'cpu.x86.amx_tile': okay,
  'cpu.x86.amx_bf16': okay,
  'gpu.nvidia': { status: 'ok', info: { devices: [{ model: 'RTX 6000 Ada', vramMB: 49140 }, { model: 'RTX 6000 Ada', vramMB: 49140 }] } },
  'gpu.nvidia.cuda': { status: 'ok', info: { count: 2, devices: [] } },
  'gpu.amd.rocm': { status: 'unavailable', reason: 'rocm-smi not found on PATH' },
  'npu.intel': { status: 'ok', info: { count: 1 } },
  'onnx.ep.cpu': okay,
  'onnx.ep.cuda': okay,
  'onnx.ep.webgpu': { status: 'unavailable', reason: 'Failed to get a WebGPU adapter: No supported adapters' },
  'fpga.acme.u250': okay,
  'asic.acme.tpu': { status: 'unavailable', reason: 'no Acme TPU on the PCI bus' },
  'plugin.broken': { status: 'error', message: 'probe threw: board not responding' }
})

describe('summarizeAccelerators', () => {
  it('gives short labels for what works only', () => {
    expect(summarizeAccelerators(workstation)).toEqual(['avx512', 'amx', 'cuda×2', 'npu.intel', 'onnx:cpu,cuda', 'fpga.acme.u250'])
  })

  it('falls back to avx2 without avx512 and to sve on arm', () => {
    expect(summarizeAccelerators(report({ 'cpu.x86.avx2': okay, 'cpu.x86.avx512f': { status: 'unavailable', reason: 'no' } }))).toEqual(['avx2'])
    expect(summarizeAccelerators(report({ 'cpu.arm.neon': okay, 'cpu.arm.sve': okay, 'cpu.arm.sve2': { status: 'unavailable', reason: 'no' } }))).toEqual(['sve'])
  })
})

describe('formatProbeTable', () => {
  it('prints the host, then one aligned row per capability', () => {
    const lines = formatProbeTable(workstation)
    expect(lines[0]).toBe('host lab-3: linux/x64, Intel Xeon w9-3495X (GenuineIntel), 112 logical / 56 physical cores, 512.0 GiB; probed in 812 ms')
    expect(lines[2]).toMatch(/^KEY\s+STATUS\s+DETAIL$/)
    // keys pad to the longest (cpu.x86.amx_bf16, 16), statuses to 'unavailable' (11)
    const row = (key: string, status: string, detail = ''): string => `${key.padEnd(16)}  ${status.padEnd(11)}  ${detail}`.trimEnd()
    expect(lines).toContain(row('cpu.x86.avx2', 'ok'))
    expect(lines).toContain(row('gpu.nvidia', 'ok', 'devices=2× RTX 6000 Ada'))
    expect(lines).toContain(row('cpu.x86', 'ok', 'model=Intel Xeon w9-3495X cores=112'))
    expect(lines).toContain(row('plugin.broken', 'error', 'probe threw: board not responding'))
    expect(lines).toContain(row('onnx.ep.webgpu', 'unavailable', 'Failed to get a WebGPU adapter: No supported adapters'))
    expect(lines).toHaveLength(3 + Object.keys(workstation.capabilities).length)
  })
})
