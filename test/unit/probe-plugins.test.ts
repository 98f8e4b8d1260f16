import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { probeCapabilities } from '../../node/probe/index.ts'
import { mergePluginResults, pluginErrorKey, probePlugin } from '../../node/probe/plugins.ts'
import { CapabilityReportSchema } from '../../protocols/membership/capabilities.ts'

const fixture = (name: string): string => resolve(import.meta.dirname, '../fixtures/probe-plugins', name)
const run = async (name: string, timeoutMs = 5_000) => await probePlugin(fixture(name), pluginErrorKey(name), timeoutMs)

describe('probe plugins', () => {
  it('takes the capabilities of a good plugin as they are', async () => {
    const result = await run('good-plugin.ts')
    expect(result.capabilities).toEqual({
      'fpga.acme.u250': { status: 'ok', info: { devices: [{ model: 'Acme U250', slot: '0000:3b:00.0' }], count: 1 } },
      'asic.acme.tpu': { status: 'unavailable', reason: 'no Acme TPU on the PCI bus' }
    })
  })

  it('turns a throwing probe into an error entry naming the problem and the fix', async () => {
    const { capabilities } = await run('throwing-plugin.mjs')
    expect(capabilities).toEqual({ 'plugin.throwing-plugin': { status: 'error', message: expect.stringContaining('probe threw: board not responding; catch failures') } })
  })

  it('rejects a result with a bad key, naming the key', async () => {
    const { capabilities } = await run('bad-key-plugin.mjs')
    const entry = capabilities['plugin.bad-key-plugin']
    expect(entry?.status).toBe('error')
    expect(entry?.status === 'error' && entry.message).toMatch(/invalid result: key "FPGA Acme": capability keys are vendor-qualified/)
  })

  it('times out a probe that never settles', async () => {
    const { capabilities } = await run('hanging-plugin.mjs', 200)
    expect(capabilities['plugin.hanging-plugin']).toMatchObject({ status: 'error', message: expect.stringContaining('probe timed out after 200ms') })
  })

  it('explains a missing file and a missing probe export', async () => {
    const missing = await run('does-not-exist.mjs')
    expect(missing.capabilities['plugin.does-not-exist']).toMatchObject({ status: 'error', message: expect.stringMatching(/^plugin file not found: .*does-not-exist\.mjs; check the --probe-plugin path/) })
    const noExport = await run('no-probe-plugin.mjs')
    expect(noExport.capabilities['plugin.no-probe-plugin']).toMatchObject({ status: 'error', message: expect.stringContaining('has no probe export; add `export async function probe') })
  })

  it('names plugins after their file, reduced to key characters, and keeps them apart', () => {
    expect(pluginErrorKey('/opt/Acme FPGA.Probe.mjs')).toBe('plugin.acme-fpga-probe')
    expect(pluginErrorKey('/a/x.ts', new Set(['plugin.x']))).toBe('plugin.x-2')
  })

  it('never lets a plugin override a built-in or an earlier plugin key', () => {
    const merged = mergePluginResults(
      { 'gpu.nvidia.cuda': { status: 'unavailable', reason: 'nvidia-smi not found on PATH' } },
      [
        { file: '/p/a.mjs', errorKey: 'plugin.a', capabilities: { 'gpu.nvidia.cuda': { status: 'ok' }, 'fpga.acme.a': { status: 'ok' } } },
        { file: '/p/b.mjs', errorKey: 'plugin.b', capabilities: { 'fpga.acme.a': { status: 'unavailable', reason: 'x' } } }
      ])
    expect(merged['gpu.nvidia.cuda']?.status).toBe('unavailable')
    expect(merged['fpga.acme.a']).toEqual({ status: 'ok' })
    expect(merged['plugin.a']).toMatchObject({ status: 'error', message: expect.stringContaining('gpu.nvidia.cuda (already reported by a built-in probe)') })
    expect(merged['plugin.b']).toMatchObject({ status: 'error', message: expect.stringContaining('fpga.acme.a (already reported by /p/a.mjs)') })
  })

  it('runs every plugin fixture through probeCapabilities in parallel with the built-in probes', async () => {
    const names = ['good-plugin.ts', 'throwing-plugin.mjs', 'bad-key-plugin.mjs', 'hanging-plugin.mjs', 'clash-plugin.mjs']
    const report = await probeCapabilities({ onnx: false, timeoutMs: 3_000, plugins: names.map(fixture) })
    expect(() => CapabilityReportSchema.parse(report)).not.toThrow()
    const status = (key: string): string | undefined => report.capabilities[key]?.status
    expect(status('fpga.acme.u250')).toBe('ok')
    expect(status('asic.acme.tpu')).toBe('unavailable')
    expect(status('fpga.acme.clash')).toBe('ok')
    for (const key of ['plugin.throwing-plugin', 'plugin.bad-key-plugin', 'plugin.hanging-plugin', 'plugin.clash-plugin']) expect(status(key)).toBe('error')
    // the clash did not override what the built-in probe found
    expect(report.capabilities['gpu.nvidia.cuda']).toEqual({ status: 'unavailable', reason: 'nvidia-smi not found on PATH' })
    expect(report.capabilities['cpu.x86']).toBeDefined()
  }, 20_000)
})
