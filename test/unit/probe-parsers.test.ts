import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { CommandResult, CommandRunner } from '../../node/probe/command.ts'
import { flagCapabilities, parseCpuFlags } from '../../node/probe/cpu-flags.ts'
import { parseNvidiaSmi, probeCuda } from '../../node/probe/cuda.ts'
import { gpuVendorCapabilities } from '../../node/probe/gpu.ts'
import { probeIntelNpu } from '../../node/probe/npu.ts'
import { probeRocm } from '../../node/probe/rocm.ts'
import { execCommand } from '../../node/probe/command.ts'
import { onnxCandidates, ortReason } from '../../node/probe/onnx-eps.ts'

const signal = new AbortController().signal
const canned = (...results: CommandResult[]): CommandRunner & { calls: string[][] } => {
  const calls: string[][] = []
  const runner = async (file: string, args: readonly string[]): Promise<CommandResult> => {
    calls.push([file, ...args])
    const next = results.shift()
    if (next === undefined) throw new Error('unexpected extra command')
    return next
  }
  return Object.assign(runner, { calls })
}
const exited = (code: number, stdout: string, stderr = ''): CommandResult => ({ status: 'exited', code, stdout, stderr })

describe('cpu flags', () => {
  const thisMachine = 'fpu sse avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vnni avx512_vp2intersect'

  it('reports flags of interest as ok or unavailable, and extra avx512/amx flags as ok', () => {
    const caps = flagCapabilities('x86', thisMachine)
    expect(caps['cpu.x86.avx512_bf16']).toEqual({ status: 'ok' })
    expect(caps['cpu.x86.avx512_fp16']).toEqual({ status: 'unavailable', reason: 'CPU does not report the avx512_fp16 flag' })
    expect(caps['cpu.x86.avx512vbmi']).toEqual({ status: 'ok' })
    expect(caps['cpu.x86.sse']).toBeUndefined()
  })

  it('maps spellings without underscores to the /proc/cpuinfo ones', () => {
    expect([...parseCpuFlags('AVX512VNNI avxvnni amx-tile AVX1.0')]).toEqual(['avx512_vnni', 'avx_vnni', 'amx_tile', 'avx'])
  })

  it('reports arm neon / sve / sve2', () => {
    const caps = flagCapabilities('arm', 'fp asimd evtstrm aes sve svebf16')
    expect(caps['cpu.arm.neon']).toEqual({ status: 'ok' })
    expect(caps['cpu.arm.sve']).toEqual({ status: 'ok' })
    expect(caps['cpu.arm.svebf16']).toEqual({ status: 'ok' })
    expect(caps['cpu.arm.sve2']?.status).toBe('unavailable')
  })

  it('treats an unreadable flag list as an error, not as absent flags', () => {
    expect(flagCapabilities('x86', '')['cpu.x86.avx2']?.status).toBe('error')
  })
})

describe('gpu controllers', () => {
  it('groups controllers by vendor and ignores BMC video', () => {
    const caps = gpuVendorCapabilities([
      { vendor: 'NVIDIA Corporation', model: 'H100 SXM5 80GB', vram: 81920 },
      { vendor: 'NVIDIA Corporation', model: 'H100 SXM5 80GB', vram: 81920 },
      { vendor: 'ASPEED Technology, Inc.', model: 'ASPEED Graphics Family', vram: null }
    ])
    expect(caps['gpu.nvidia']).toEqual({ status: 'ok', info: { devices: [{ model: 'H100 SXM5 80GB', vramMB: 81920 }, { model: 'H100 SXM5 80GB', vramMB: 81920 }] } })
    expect(caps['gpu.amd']).toEqual({ status: 'unavailable', reason: 'no AMD graphics controller found' })
    expect(caps['gpu.intel']?.status).toBe('unavailable')
  })
})

describe('nvidia-smi', () => {
  const twoGpus = '0, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\n1, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\n'

  it('parses devices, including names with commas and N/A fields', () => {
    expect(parseNvidiaSmi('0, Tesla K80, rev. B, [N/A], 470.1, [N/A]\n')).toEqual([
      { index: 0, name: 'Tesla K80, rev. B', memoryMB: null, driver: '470.1', computeCapability: null }
    ])
  })

  it('reports devices and count', async () => {
    const runner = canned(exited(0, twoGpus))
    const caps = await probeCuda(signal, runner)
    expect(caps['gpu.nvidia.cuda']).toEqual({
      status: 'ok',
      info: {
        count: 2,
        devices: [0, 1].map((index) => ({ index, name: 'NVIDIA H100 80GB HBM3', memoryMB: 81559, driver: '550.54.15', computeCapability: '9.0' }))
      }
    })
    expect(runner.calls[0]).toEqual(['nvidia-smi', '--query-gpu=index,name,memory.total,driver_version,compute_cap', '--format=csv,noheader,nounits'])
  })

  it('retries without compute_cap on drivers that do not know it', async () => {
    const runner = canned(exited(2, 'Field "compute_cap" is not a valid field to query.\n'), exited(0, '0, Tesla T4, 15109, 470.82.01\n'))
    const caps = await probeCuda(signal, runner)
    expect(caps['gpu.nvidia.cuda']).toMatchObject({ status: 'ok', info: { count: 1, devices: [{ name: 'Tesla T4', computeCapability: null }] } })
  })

  it('tells missing, failing and empty apart', async () => {
    expect((await probeCuda(signal, canned({ status: 'not-found' })))['gpu.nvidia.cuda'])
      .toEqual({ status: 'unavailable', reason: 'nvidia-smi not found on PATH' })
    const driverDown = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\nMake sure that the latest NVIDIA driver is installed and running.\n"
    expect((await probeCuda(signal, canned(exited(9, driverDown))))['gpu.nvidia.cuda'])
      .toEqual({ status: 'error', message: "nvidia-smi exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." })
    expect((await probeCuda(signal, canned(exited(0, ''))))['gpu.nvidia.cuda'])
      .toEqual({ status: 'unavailable', reason: 'nvidia-smi reports no GPUs' })
  })

  it('runs the real command runner against a command that does not exist and one that fails', async () => {
    expect(await execCommand('zp-no-such-command-here', [], signal)).toEqual({ status: 'not-found' })
    expect(await execCommand(process.execPath, ['-e', 'console.error("boom"); process.exit(3)'], signal))
      .toEqual({ status: 'exited', code: 3, stdout: '', stderr: 'boom\n' })
  })
})

describe('rocm-smi', () => {
  it('parses product names after warnings and reports a missing tool as unavailable', async () => {
    const stdout = 'WARNING: AMD GPU device(s) is/are in a low-power state.\n{"card0": {"Card series": "AMD Instinct MI210", "Card model": "0x0c34", "Card vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "GFX Version": "gfx90a"}}'
    expect((await probeRocm(signal, canned(exited(0, stdout))))['gpu.amd.rocm']).toEqual({
      status: 'ok', info: { count: 1, devices: [{ card: 'card0', series: 'AMD Instinct MI210', model: '0x0c34', gfxVersion: 'gfx90a' }] }
    })
    expect((await probeRocm(signal, canned({ status: 'not-found' })))['gpu.amd.rocm']).toEqual({ status: 'unavailable', reason: 'rocm-smi not found on PATH' })
  })
})

describe('intel npu', () => {
  let root: string | undefined
  afterEach(async () => { if (root !== undefined) await rm(root, { recursive: true, force: true }) })

  const fakeAccel = async (driver: string): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'zp-npu-'))
    const pci = join(dir, 'sys/devices/pci0000:00/0000:00:0b.0')
    await mkdir(pci, { recursive: true })
    await mkdir(join(dir, 'sys/bus/pci/drivers', driver), { recursive: true })
    await symlink(join(dir, 'sys/bus/pci/drivers', driver), join(pci, 'driver'))
    await writeFile(join(pci, 'device'), '0x7d1d\n')
    await mkdir(join(dir, 'sys/class/accel/accel0'), { recursive: true })
    await symlink(pci, join(dir, 'sys/class/accel/accel0/device'))
    await mkdir(join(dir, 'dev/accel'), { recursive: true })
    await writeFile(join(dir, 'dev/accel/accel0'), '')
    return dir
  }

  it('finds an accel device bound to intel_vpu', async () => {
    root = await fakeAccel('intel_vpu')
    expect((await probeIntelNpu(root))['npu.intel']).toEqual({
      status: 'ok',
      info: { count: 1, devices: [{ name: 'accel0', driver: 'intel_vpu', pciAddress: '0000:00:0b.0', pciDeviceId: '0x7d1d', devNode: join(root, 'dev/accel/accel0') }] }
    })
  })

  it('does not count an accel device of another driver, and names it', async () => {
    root = await fakeAccel('amdxdna')
    expect((await probeIntelNpu(root))['npu.intel']).toEqual({
      status: 'unavailable', reason: 'no /dev/accel device bound to the intel_vpu driver (accel0 is bound to amdxdna)'
    })
  })

  it('is unavailable where there is no accel class at all', async () => {
    root = await mkdtemp(join(tmpdir(), 'zp-npu-'))
    expect((await probeIntelNpu(root))['npu.intel']).toEqual({ status: 'unavailable', reason: 'no /dev/accel device bound to the intel_vpu driver' })
  })
})

describe('onnx providers', () => {
  it('tries cpu first and webgpu last, and only providers for this OS', () => {
    expect(onnxCandidates('linux', ['cpu', 'webgpu', 'cuda', 'tensorrt', 'dml'])).toEqual(['cpu', 'cuda', 'tensorrt', 'openvino', 'rocm', 'webgpu'])
    expect(onnxCandidates('darwin', ['webgpu', 'cpu'])).toEqual(['cpu', 'coreml', 'webgpu'])
  })

  it('keeps the actionable part of an ORT_ENFORCE message', () => {
    const raw = '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(const onnxruntime::webgpu::WebGpuContextConfig&)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\n'
    expect(ortReason(raw)).toBe('Failed to get a WebGPU adapter: No supported adapters')
    expect(ortReason('no available backend found. ERR: [rocm] backend not found.')).toBe('no available backend found. ERR: [rocm] backend not found.')
  })
})
