import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { BridgeEngine, JoinCommand } from '../../bootstrap/bridge/engine.ts'
import { BridgeRegistry, DEFAULT_IDLE_MS, type BridgeRegistryInit } from '../../bootstrap/bridge/registry.ts'
import { silentLogger } from '../../node/logger.ts'
import { openDb, Storage } from '../../node/storage.ts'
import { ENGINES, type Engine, type EngineOptions, type EngineView } from '../../protocols/bridge/schema.ts'
import { tempDir } from '../helpers.ts'

/*
 * The registry's own decisions, with each engine replaced by a recorder of
 * what it was asked (the engines themselves are tested against Slurm, Dask
 * and the fake Ray and Kubernetes servers): which key and idle time each
 * engine's nodes get, and a burst held to its maxCost.
 */
let dir: { path: string, remove: () => Promise<void> }
let storage: Storage
let calls: Array<{ engine: Engine, join: JoinCommand }>

function recorder<E extends Engine> (engine: E): BridgeEngine<EngineOptions[E]> {
  const view: EngineView = { state: 'RUNNING', requested: 1, running: 1 }
  return {
    engine,
    up: async (_options, join) => {
      calls.push({ engine, join })
      return { id: `${engine}-${calls.length}`, engineId: String(calls.length), requested: 1 }
    },
    view: async () => view,
    down: async () => {}
  }
}

function registry (extra: Partial<BridgeRegistryInit> = {}): BridgeRegistry {
  return new BridgeRegistry({
    storage,
    log: silentLogger(),
    engines: { slurm: recorder('slurm'), dask: recorder('dask'), ray: recorder('ray'), k8s: recorder('k8s') },
    peers: async () => [],
    nodeArgv: ['/usr/bin/node', '/opt/zp/zp-node.mjs'],
    announced: () => ['/ip4/10.0.0.1/tcp/4170/p2p/12D3KooWExample'],
    ...extra
  })
}

const OPTIONS: EngineOptions = {
  slurm: { nodes: 1 },
  dask: { scheduler: 'tcp://10.0.0.5:8786' },
  ray: { address: 'http://10.0.0.5:8265', nodes: 1 },
  k8s: { nodes: 1, image: 'zp-node:0.1.0' }
}

beforeEach(async () => {
  dir = await tempDir('zp-bridge-registry-')
  storage = new Storage(await openDb(join(dir.path, 'db'), dir.path), silentLogger())
  calls = []
})
afterEach(async () => {
  await storage.close()
  await dir.remove()
})

describe('bridge registry', () => {
  it('nodes leave after 2 min idle on Slurm, Ray and Kubernetes (their slots cost), stay with their worker on Dask; 0 means never', async () => {
    const r = registry()
    for (const engine of ENGINES) await r.up({ engine, options: OPTIONS[engine] } as never, AbortSignal.timeout(5000))
    expect(Object.fromEntries(calls.map(c => [c.engine, c.join.idleMs]))).toEqual({ slurm: DEFAULT_IDLE_MS, dask: undefined, ray: DEFAULT_IDLE_MS, k8s: DEFAULT_IDLE_MS })
    await r.up({ engine: 'k8s', options: { ...OPTIONS.k8s, idleMs: 0 } }, AbortSignal.timeout(5000))
    expect(calls.at(-1)!.join.idleMs).toBeUndefined()
  })

  it('a node holding its key from --psk-env gives Kubernetes the key text, and refuses engines that need a file unless one is named', async () => {
    const key = '/key/swarm/psk/1.0.0/\n/base16/\n' + 'cd'.repeat(32)
    const r = registry({ pskText: key })
    await r.up({ engine: 'k8s', options: OPTIONS.k8s }, AbortSignal.timeout(5000))
    expect(calls[0]!.join.pskText).toBe(key)
    expect(calls[0]!.join.pskFile).toBeUndefined()
    for (const engine of ['slurm', 'dask', 'ray'] as const) {
      await expect(r.up({ engine, options: OPTIONS[engine] } as never, AbortSignal.timeout(5000))).rejects.toThrow(/--psk-env.*pass --psk FILE/)
    }
    await r.up({ engine: 'slurm', options: { ...OPTIONS.slurm, pskFile: '/shared/mesh.key' } }, AbortSignal.timeout(5000))
    expect(calls.at(-1)!.join).toMatchObject({ pskFile: '/shared/mesh.key' })
    expect(calls.at(-1)!.join.pskText).toBeUndefined()
    expect(await r.list(AbortSignal.timeout(5000))).toHaveLength(2)
  })

  it('a burst over its maxCost, or with a maxCost and no estimate, brings nothing up', async () => {
    const r = registry()
    const estimate = { cost: 30, currency: 'USD', coreHours: 600, gpuHours: 0, hours: 2 }
    await r.campaignStarted('c1', { k8s: OPTIONS.k8s, maxCost: 20, estimate }, AbortSignal.timeout(5000))
    await r.campaignStarted('c2', { ray: OPTIONS.ray, maxCost: 20 }, AbortSignal.timeout(5000))
    expect(calls).toEqual([])
    await r.campaignStarted('c3', { k8s: OPTIONS.k8s, ray: OPTIONS.ray, maxCost: 40, estimate }, AbortSignal.timeout(5000))
    expect(calls.map(c => c.engine).sort()).toEqual(['k8s', 'ray'])
    expect((await r.list(AbortSignal.timeout(5000))).map(a => a.campaignId)).toEqual(['c3', 'c3'])
  })
})
