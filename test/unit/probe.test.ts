import { beforeAll, describe, expect, it } from 'vitest'
import { formatProbeTable, probeCapabilities, summarizeAccelerators } from '../../node/probe/index.ts'
import { CAPABILITY_KEY, CapabilityReportSchema, type CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { silentLogger } from '../../node/logger.ts'

// The real probe on this machine: x86 with AVX-512, no GPU, no NPU, onnxruntime-node with cpu + webgpu bundled.
describe('probeCapabilities on this machine', () => {
  let report: CapabilityReport

  beforeAll(async () => {
    report = await probeCapabilities({ logger: silentLogger() })
  }, 60_000)

  it('returns a schema-valid report whose keys all match CAPABILITY_KEY', () => {
    expect(() => CapabilityReportSchema.parse(report)).not.toThrow()
    for (const key of Object.keys(report.capabilities)) expect(key).toMatch(CAPABILITY_KEY)
    expect(report.host.cores).toBeGreaterThan(0)
    expect(report.host.memoryBytes).toBeGreaterThan(0)
  })

  it('reports the CPU and its flags', () => {
    expect(report.capabilities['cpu.x86']).toMatchObject({ status: 'ok', info: { cores: report.host.cores } })
    expect(report.capabilities['cpu.x86.avx2']?.status).toBe('ok')
    expect(report.capabilities['cpu.x86.amx_tile']).toEqual({ status: 'unavailable', reason: 'CPU does not report the amx_tile flag' })
  })

  it('finds no GPU or NPU here, and says why rather than erroring', () => {
    expect(report.capabilities['gpu.nvidia.cuda']).toMatchObject({ status: 'unavailable', reason: expect.stringContaining('nvidia-smi') })
    expect(report.capabilities['gpu.nvidia']?.status).toBe('unavailable')
    expect(report.capabilities['npu.intel']?.status).toBe('unavailable')
  })

  it('runs the ORT cpu provider and reports the non-bundled ones as unavailable with ORT\'s reason', () => {
    expect(report.capabilities['onnx.ep.cpu']).toMatchObject({ status: 'ok', info: { bundled: true } })
    expect(report.capabilities['onnx.ep.cuda']).toMatchObject({ status: 'unavailable', reason: expect.stringContaining('not bundled') })
    // webgpu finds no adapter on a headless machine: an answer, not a crash
    expect(report.capabilities['onnx.ep.webgpu']?.status).not.toBe('error')
    expect(report.capabilities['onnx.ep.dml']).toBeUndefined()
    expect(Object.keys(report.capabilities).filter((k) => k.startsWith('onnx.ep.'))[0]).toBe('onnx.ep.cpu')
  })

  it('summarizes and formats the report', () => {
    const labels = summarizeAccelerators(report)
    expect(labels).toContain('onnx:cpu')
    expect(labels.some((l) => l === 'avx512' || l === 'avx2')).toBe(true)
    const lines = formatProbeTable(report)
    expect(lines[0]).toContain(report.host.hostname)
    expect(lines.find((l) => l.startsWith('gpu.nvidia.cuda '))).toMatch(/unavailable\s+nvidia-smi not found on PATH/)
  })
})

describe('probeCapabilities cancellation', () => {
  it('rejects at once with the reason of an already aborted signal', async () => {
    const reason = new Error('shutting down')
    await expect(probeCapabilities({ onnx: false, signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
  })

  it('rejects with the abort reason when aborted while probing', async () => {
    const controller = new AbortController()
    const reason = new Error('node stopping')
    const probing = probeCapabilities({ signal: controller.signal, plugins: ['test/fixtures/probe-plugins/hanging-plugin.mjs'] })
    controller.abort(reason)
    await expect(probing).rejects.toBe(reason)
  })
})
