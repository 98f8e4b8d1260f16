import { describe, expect, it } from 'vitest'
import { DEFAULT_IDLE_MS } from '../../bootstrap/bridge/registry.ts'
import { burstNodes, calibrationIndexes, cpuQuantity, estimate, finishSeconds, gresGpus, needsAccelerator, shardTime, type ShardTime } from '../../node/campaign/cost.ts'
import { parsePrices } from '../../node/campaign/prices.ts'

const time = (meanMs: number, extra: Partial<ShardTime> = {}): ShardTime => ({
  samples: 2, meanMs, stdevMs: 0, minMs: meanMs, maxMs: meanMs, cpuMs: meanMs, cores: 1, coreSeconds: meanMs / 1000, startupMs: 0, ...extra
})

describe('calibration shards', () => {
  it('are spread evenly over the full shards, the same every time', () => {
    expect(calibrationIndexes(40, 40, 3)).toEqual([0, 20, 39])
    // the 13th shard is partial: not timed while full ones exist
    expect(calibrationIndexes(13, 12, 3)).toEqual([0, 6, 11])
    expect(calibrationIndexes(5, 5, 1)).toEqual([2])
    expect(calibrationIndexes(2, 2, 3)).toEqual([0, 1])
    // a campaign smaller than one shard has only its partial one
    expect(calibrationIndexes(1, 0, 3)).toEqual([0])
  })
})

describe('shardTime', () => {
  it('leaves the first shard (the runner\'s start) out of the mean and counts its excess as start-up', () => {
    const t = shardTime([
      { index: 0, items: 100, wallMs: 1500, cpuMs: 1500 },
      { index: 5, items: 100, wallMs: 1000, cpuMs: 900 },
      { index: 9, items: 100, wallMs: 1200, cpuMs: 1300 }
    ], 100)
    expect(t).toEqual({ samples: 2, meanMs: 1100, stdevMs: Math.sqrt(20_000), minMs: 1000, maxMs: 1200, cpuMs: 1100, cores: 1, coreSeconds: 1.1, startupMs: 400 })
  })

  it('counts a multi-threaded shard by the whole cores it kept busy, and runtime threads not at all', () => {
    const threaded = shardTime([{ index: 0, items: 10, wallMs: 900, cpuMs: 3000 }, { index: 1, items: 10, wallMs: 1000, cpuMs: 3900 }], 10)
    expect(threaded.cores).toBe(4)
    expect(threaded.coreSeconds).toBe(4)
    expect(threaded.startupMs).toBe(0)
    // JIT and GC threads add a tenth: still the one core of its slot
    expect(shardTime([{ index: 0, items: 10, wallMs: 1000, cpuMs: 1100 }, { index: 1, items: 10, wallMs: 1000, cpuMs: 1120 }], 10).cores).toBe(1)
    // a shard that waits (I/O, a remote call) holds its core all the same
    expect(shardTime([{ index: 0, items: 10, wallMs: 1000, cpuMs: 100 }], 10).coreSeconds).toBe(1)
  })

  it('scales a partial shard to a full one, and with one sample keeps its start-up in', () => {
    expect(shardTime([{ index: 3, items: 25, wallMs: 500, cpuMs: 500 }], 100)).toMatchObject({ samples: 1, meanMs: 2000, coreSeconds: 2, startupMs: 0 })
  })
})

describe('burst nodes', () => {
  it('reads cores, slots, GPUs and the idle timeout from each engine\'s options', () => {
    expect(burstNodes({
      slurm: { nodes: 4, cpusPerTask: 8, gres: 'gpu:a100:2' },
      ray: { address: 'http://head:8265', nodes: 3, numCpus: 0.5 },
      k8s: { nodes: 2, image: 'zp:1', cpu: '1500m', gpus: 1, idleMs: 0 },
      dask: { scheduler: 'tcp://s:8786', perWorker: 4 }
    })).toEqual([
      { engine: 'slurm', nodes: 4, cores: 8, slots: 8, gpus: 2, idleMs: DEFAULT_IDLE_MS },
      { engine: 'dask', nodes: 1, cores: 4, slots: 4, gpus: 0, idleMs: 0 },
      { engine: 'ray', nodes: 3, cores: 0.5, slots: 1, gpus: 0, idleMs: DEFAULT_IDLE_MS },
      { engine: 'k8s', nodes: 2, cores: 1.5, slots: 2, gpus: 1, idleMs: 0 }
    ])
    expect(burstNodes({ maxCost: 5 })).toEqual([])
    expect(burstNodes(undefined)).toEqual([])
  })

  it('parses Slurm GPUs and Kubernetes CPU quantities', () => {
    expect([gresGpus(undefined), gresGpus('gpu'), gresGpus('gpu:2,mps:100'), gresGpus('mps:100'), gresGpus('gpu:v100:4')]).toEqual([0, 1, 2, 0, 4])
    expect([cpuQuantity('500m'), cpuQuantity('2'), cpuQuantity('1.5')]).toEqual([0.5, 2, 1.5])
  })

  it('tells accelerator requirements from CPU ones', () => {
    expect(needsAccelerator(['gpu.nvidia.cuda'])).toBe(true)
    expect(needsAccelerator(['onnx.ep.cuda'])).toBe(true)
    expect(needsAccelerator(['npu.intel'])).toBe(true)
    expect(needsAccelerator(['onnx.ep.cpu', 'cpu.x86.avx2', 'exec.sim'])).toBe(false)
  })
})

describe('estimate', () => {
  const prices = parsePrices({
    currency: 'EUR',
    default: { coreHour: 0.1, gpuHour: 2 },
    bridges: { k8s: { coreHour: 0.05 } },
    labels: { 'pool=lab': { coreHour: 0 } }
  })
  const mesh = [{ name: 'lab-1', slots: 6, labels: { pool: 'lab' } }, { name: 'spot-1', slots: 4, labels: { pool: 'spot' } }]
  // 100 shards of 6 minutes; the mesh has 10 slots, the burst 5 nodes × 2
  const input = { shards: 100, fullShards: 100, time: time(360_000), gpusPerShard: 0, mesh }
  const k8s = { engine: 'k8s' as const, nodes: 5, cores: 2, slots: 2, gpus: 1, idleMs: 1_800_000 }

  it('prices the mesh\'s share by node label and the burst whole, until the end plus its idle timeout', () => {
    const e = estimate({ ...input, burst: [k8s], prices })
    expect(e.coreHours).toBe(10)
    expect(e.gpuHours).toBe(0)
    // 10 waves of 6 min on the mesh; 5 with the burst's 10 slots
    expect(e.finish).toEqual({ mesh: { slots: 10, seconds: 3600 }, withBurst: { slots: 20, seconds: 1800 } })
    expect(e.placement).toEqual([
      { where: 'lab-1', slots: 6, shards: 30, coreHours: 3, gpuHours: 0, cost: 0, rate: 'labels."pool=lab"' },
      // pool=spot has no price of its own
      { where: 'spot-1', slots: 4, shards: 20, coreHours: 2, gpuHours: 0, cost: 0.2, rate: 'default' },
      { where: 'burst k8s', slots: 10, shards: 50, coreHours: 5, gpuHours: 0 }
    ])
    // half an hour of work and half an hour of idle timeout: 5 × 2 cores × 1 h at 0.05, 5 GPUs × 1 h at the default 2
    expect(e.burst).toEqual([{ engine: 'k8s', nodes: 5, cores: 2, gpus: 1, hours: 1, coreHours: 10, gpuHours: 5, cost: 10.5, rate: 'bridges.k8s' }])
    expect(e.cost).toEqual({ currency: 'EUR', mesh: 0.2, burst: 10.5, total: 10.7 })
    expect(e.burstEstimate).toEqual({ cost: 10.5, currency: 'EUR', coreHours: 10, gpuHours: 5, hours: 1 })
  })

  it('without a burst or prices: work, finish time and shares only', () => {
    const e = estimate({ ...input, burst: [] })
    expect(e.finish).toEqual({ mesh: { slots: 10, seconds: 3600 } })
    expect(e.placement.map(p => p.shards)).toEqual([60, 40])
    expect(e.cost).toBeUndefined()
    expect(e.burstEstimate).toBeUndefined()
    // prices and no burst: nothing to stamp
    expect(estimate({ ...input, burst: [], prices }).burstEstimate).toBeUndefined()
  })

  it('counts GPU-hours for a campaign that requires an accelerator, at each node\'s GPU price', () => {
    const e = estimate({ ...input, gpusPerShard: 1, burst: [], prices })
    expect(e.gpuHours).toBe(10)
    expect(e.placement.map(p => p.cost)).toEqual([6 * 2, 4 * 2 + 4 * 0.1])
  })

  it('adds each used slot\'s start-up once, to the work and to the finish time', () => {
    const e = estimate({ ...input, time: time(360_000, { startupMs: 36_000 }), burst: [] })
    expect(e.startupSlots).toBe(10)
    expect(e.coreHours).toBe(10.1)
    expect(e.finish.mesh.seconds).toBe(3636)
    // 3 shards on 10 slots: 3 start-ups
    expect(estimate({ ...input, shards: 3, fullShards: 3, time: time(360_000, { startupMs: 36_000 }), burst: [] }).startupSlots).toBe(3)
  })

  it('a campaign no slot can run never finishes; the burst alone still can', () => {
    const none = estimate({ ...input, mesh: [], burst: [] })
    expect(none.finish.mesh).toEqual({ slots: 0, seconds: null })
    expect(none.placement).toEqual([])
    const burstOnly = estimate({ ...input, mesh: [], burst: [k8s], prices })
    expect(burstOnly.finish.withBurst).toEqual({ slots: 10, seconds: 3600 })
    expect(burstOnly.burst[0]!.hours).toBe(1.5)
  })

  it('finish time is waves of shards: a last, smaller wave takes as long as a full one', () => {
    expect(finishSeconds(21, 10, { meanMs: 1000, startupMs: 0 })).toBe(3)
    expect(finishSeconds(20, 10, { meanMs: 1000, startupMs: 0 })).toBe(2)
    expect(finishSeconds(5, 0, { meanMs: 1000, startupMs: 0 })).toBeNull()
  })
})
