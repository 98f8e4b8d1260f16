import { chmod, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { PeerTable } from '../../actors/membership/peer-table.ts'
import { peerJson } from '../../node/api/routes.ts'
import { renderPeerTable } from '../../node/cli/format.ts'
import { silentLogger } from '../../node/logger.ts'
import type { CommandResult, CommandRunner } from '../../node/probe/command.ts'
import { parseNvidiaSmiLoad, parseRocmSmiLoad } from '../../node/probe/gpu-load.ts'
import { cpuBusy, UtilisationSampler, type CpuTimes } from '../../node/probe/utilisation.ts'
import { decodeAs, encode } from '../../protocols/common/codec.ts'
import { MAX_HEARTBEAT_BYTES, MAX_LOAD_GPUS } from '../../protocols/membership/constants.ts'
import { HeartbeatSchema, type Heartbeat, type Load } from '../../protocols/membership/schema.ts'
import { tempDir } from '../helpers.ts'

const GIB = 1024 ** 3
const MIB = 1024 ** 2

// what nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits prints
const NVIDIA = '1, 0, 4, 81559\n0, 37, 1024, 81559\n2, [N/A], [N/A], 40960\n'
// rocm-smi --showuse --showmeminfo vram --json, with the warning some versions print first
const ROCM = 'WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n' + JSON.stringify({
  card10: { 'GPU use (%)': '5', 'VRAM Total Memory (B)': '68702699520', 'VRAM Total Used Memory (B)': '10485760' },
  card0: { 'GPU use (%)': '91', 'GPU Memory Allocated (VRAM%)': '50', 'VRAM Total Memory (B)': '206158430208', 'VRAM Total Used Memory (B)': '103079215104' },
  card1: { 'GPU use (%)': 'N/A' },
  system: { 'Driver version': '6.7.0' }
})

describe('GPU load parsers', () => {
  it('reads nvidia-smi CSV in index order, MiB as bytes, [N/A] as null', () => {
    expect(parseNvidiaSmiLoad(NVIDIA)).toEqual([
      { util: 0.37, memUsed: 1024 * MIB, memTotal: 81559 * MIB },
      { util: 0, memUsed: 4 * MIB, memTotal: 81559 * MIB },
      { util: null, memUsed: null, memTotal: 40960 * MIB }
    ])
    expect(parseNvidiaSmiLoad('')).toEqual([])
    expect(parseNvidiaSmiLoad('No devices were found\n')).toEqual([])
  })

  it('reads rocm-smi JSON in card order, past warnings, skipping the system entry', () => {
    expect(parseRocmSmiLoad(ROCM)).toEqual([
      { util: 0.91, memUsed: 103079215104, memTotal: 206158430208 },
      { util: null, memUsed: null, memTotal: null },
      { util: 0.05, memUsed: 10485760, memTotal: 68702699520 }
    ])
    expect(parseRocmSmiLoad('')).toEqual([])
  })

  it('computes CPU busy from two readings of cumulative times', () => {
    expect(cpuBusy({ busy: 100, total: 1000 }, { busy: 350, total: 2000 })).toBe(0.25)
    expect(cpuBusy({ busy: 100, total: 1000 }, { busy: 100, total: 1000 })).toBe(0)
  })
})

/** A machine whose CPU counters advance 25% busy between readings, with 16 GiB of which 4 are used. */
function fakeMachine (): { readCpuTimes: () => CpuTimes, readMemory: () => Promise<{ used: number, total: number }> } {
  let n = 0
  return {
    readCpuTimes: () => { n++; return { busy: n * 250, total: n * 1000 } },
    readMemory: async () => ({ used: 4 * GIB, total: 16 * GIB })
  }
}

describe('the utilisation sampler', () => {
  afterEach(() => { vi.useRealTimers(); vi.unstubAllEnvs() })

  it('samples one second in, then every interval; a failing sample is skipped and the last good one stays', async () => {
    vi.useFakeTimers()
    const calls: string[] = []
    let nvidia: () => Promise<CommandResult> = async () => ({ status: 'exited', code: 0, stdout: NVIDIA, stderr: '' })
    const run: CommandRunner = async (file) => {
      calls.push(file)
      return file === 'nvidia-smi' ? await nvidia() : { status: 'not-found' }
    }
    const stop = new AbortController()
    const sampler = new UtilisationSampler({ intervalMs: 5000, signal: stop.signal, log: silentLogger(), run, ...fakeMachine() })
    sampler.start()
    await vi.advanceTimersByTimeAsync(999)
    expect(sampler.latest).toBeNull()
    await vi.advanceTimersByTimeAsync(1)
    const first = sampler.latest
    expect(first).toEqual({ cpu: 0.25, memUsed: 4 * GIB, memTotal: 16 * GIB, gpus: parseNvidiaSmiLoad(NVIDIA) })

    nvidia = async () => ({ status: 'exited', code: 9, stdout: '', stderr: 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver' })
    await vi.advanceTimersByTimeAsync(5000)
    expect(sampler.latest).toBe(first)
    // rocm-smi was missing at the first sample and is not looked for again
    expect(calls).toEqual(['nvidia-smi', 'rocm-smi', 'nvidia-smi'])

    // two more failures: nvidia-smi is given up, and samples carry CPU and memory alone
    await vi.advanceTimersByTimeAsync(10_000)
    expect(sampler.latest).toBe(first)
    await vi.advanceTimersByTimeAsync(5000)
    expect(sampler.latest).toEqual({ cpu: 0.25, memUsed: 4 * GIB, memTotal: 16 * GIB, gpus: [] })
    expect(calls.filter(c => c === 'nvidia-smi')).toHaveLength(4)

    stop.abort()
    const last = sampler.latest
    await vi.advanceTimersByTimeAsync(60_000)
    expect(sampler.latest).toBe(last)
  })

  it('never overlaps samples: a hung tool is killed at the deadline and the next sample waits its interval', async () => {
    vi.useFakeTimers()
    const started: number[] = []
    let killed = 0
    const run: CommandRunner = async (file, _args, signal) => {
      if (file !== 'nvidia-smi') return { status: 'not-found' }
      started.push(Date.now())
      return await new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => { killed++; reject(signal.reason) }, { once: true })
      })
    }
    const stop = new AbortController()
    const t0 = Date.now()
    const sampler = new UtilisationSampler({ intervalMs: 5000, signal: stop.signal, log: silentLogger(), run, ...fakeMachine() })
    sampler.start()
    await vi.advanceTimersByTimeAsync(20_000)
    // 1 s in, killed at 5 s, next at 10 s, killed at 14 s, next at 19 s
    expect(started.map(t => t - t0)).toEqual([1000, 10_000, 19_000])
    expect(killed).toBe(2)
    expect(sampler.latest).toBeNull()
    // the node stopping kills the one in flight
    stop.abort()
    await vi.advanceTimersByTimeAsync(0)
    expect(killed).toBe(3)
  })

  it('runs the real nvidia-smi command line (a fake nvidia-smi on PATH)', async () => {
    const bin = await tempDir('zp-fake-smi-')
    try {
      const script = join(bin.path, 'nvidia-smi')
      // answers only the exact query the sampler documents
      await writeFile(script, `#!/bin/sh\n[ "$*" = "--query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits" ] || exit 2\nprintf '${NVIDIA.replaceAll('\n', '\\n')}'\n`)
      await chmod(script, 0o755)
      vi.stubEnv('PATH', `${bin.path}${delimiter}${process.env.PATH ?? ''}`)
      const sampler = new UtilisationSampler({ signal: new AbortController().signal, log: silentLogger() })
      const load = await sampler.sample(AbortSignal.timeout(10_000))
      expect(load.gpus).toEqual(parseNvidiaSmiLoad(NVIDIA))
      expect(load.cpu).toBeGreaterThanOrEqual(0)
      expect(load.cpu).toBeLessThanOrEqual(1)
      expect(load.memUsed).toBeGreaterThan(0)
      expect(load.memUsed).toBeLessThan(load.memTotal)
    } finally {
      await bin.remove()
    }
  })
})

const gib = (n: number): number => Math.round(n * GIB)
const LOAD: Load = { cpu: 0.42, memUsed: gib(12.3), memTotal: gib(62.8), gpus: [{ util: 0.85, memUsed: gib(10.2), memTotal: gib(79.6) }, { util: null, memUsed: 0, memTotal: gib(79.6) }] }
const hb = (over: Partial<Heartbeat> = {}): Heartbeat => ({
  v: 1, name: 'p', incarnation: 100, seq: 1, state: 'alive', multiaddrs: ['/ip4/127.0.0.1/tcp/1'], slots: { total: 2, free: 2 }, capsHash: 'h1', ...over
})

describe('load in heartbeats', () => {
  it('travels in the heartbeat, optional, and within the size limit with the most GPUs', () => {
    expect(decodeAs(HeartbeatSchema, encode(hb()), 'heartbeat').load).toBeUndefined()
    const gpus = Array.from({ length: MAX_LOAD_GPUS }, () => ({ util: 0.123, memUsed: 80 * GIB - 1, memTotal: 80 * GIB }))
    const big = hb({ load: { ...LOAD, gpus }, multiaddrs: Array.from({ length: 8 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4170/p2p/12D3KooWLRPJAA5o6Fd4ywDYrQa3nu1PQjJrGrRqpJVCNBNYKJ7B`) })
    const bytes = encode(big)
    expect(bytes.byteLength).toBeLessThan(MAX_HEARTBEAT_BYTES / 2)
    expect(decodeAs(HeartbeatSchema, bytes, 'heartbeat').load).toEqual(big.load)
    expect(() => decodeAs(HeartbeatSchema, encode(hb({ load: { ...LOAD, cpu: 37 } })), 'heartbeat')).toThrow(/cpu/)
    expect(() => decodeAs(HeartbeatSchema, encode(hb({ load: { ...LOAD, gpus: [...gpus, ...gpus] } })), 'heartbeat')).toThrow(/gpus/)
  })

  it('is kept per peer from its latest heartbeat, and forgotten when one comes without it', () => {
    const t = new PeerTable({ heartbeatMs: 1000, suspectAfterMs: 4000, deadAfterMs: 8000, redialTimeoutMs: 2000 })
    t.observe('p', hb({ load: LOAD }), 0)
    expect(t.get('p')?.load).toEqual(LOAD)
    t.observe('p', hb({ seq: 2 }), 1)
    expect(t.get('p')?.load).toBeNull()
  })
})

describe('zp peers --wide', () => {
  /** the table's text lines, borders blanked and border-only lines dropped */
  const cells = (table: string): string[] => table.split('\n').map(l => l.replace(/[│┌┐└┘├┤┬┴┼─]/g, ' ').trim()).filter(l => l !== '')
  const peer = (name: string, load: Load | null, state: 'alive' | 'dead' = 'alive') => peerJson({
    peerId: `id-${name}`, name, state, reason: '', self: false, connected: true, multiaddrs: ['/ip4/10.0.0.7/tcp/4170'], capabilities: null, capsHash: '',
    slots: { total: 2, free: 1 }, load, incarnation: 1, seq: 1, lastSeenMs: 0, stateSince: 0, left: false
  })

  it('adds CPU, MEM and one line per GPU; unknown or dead load shows -', () => {
    const lines = cells(renderPeerTable([peer('gpu-box', LOAD), peer('old', null), peer('gone', LOAD, 'dead')], 0, { wide: true }))
    expect(lines[0]).toMatch(/FREE SLOTS\s+CPU\s+MEM\s+GPU\s+LAST SEEN/)
    const row = lines.find(l => l.includes('gpu-box'))!
    expect(row).toMatch(/42%\s+12\.3\/62\.8 GiB\s+0: 85% 10\.2\/79\.6 GiB/)
    expect(lines[lines.indexOf(row) + 1]).toMatch(/1: \? 0\.0\/79\.6 GiB/)
    expect(lines.find(l => l.includes('old'))).toMatch(/1\/2\s+-\s+-\s+-\s+/)
    expect(lines.find(l => l.includes('gone'))).toMatch(/\s+-\s+-\s+-\s+-\s+/)
  })

  it('leaves the default table as it was', () => {
    const table = renderPeerTable([peer('gpu-box', LOAD)], 0)
    expect(cells(table)[0]).toMatch(/^PEER\s+NAME\s+STATE\s+ADDRESS\s+ACCELERATORS\s+FREE SLOTS\s+LAST SEEN\s*$/)
    expect(table).not.toContain('GiB')
  })
})
