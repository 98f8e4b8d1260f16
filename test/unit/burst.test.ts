import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { burstRefusal } from '../../bootstrap/bridge/registry.ts'
import { loadCampaignFile } from '../../node/campaign/load.ts'
import { submitExtras } from '../../node/cli/campaigns.ts'
import { loadPskEnv } from '../../node/psk.ts'
import { BurstSchema } from '../../protocols/bridge/schema.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => {
  dir = await tempDir('zp-burst-')
  await writeFile(join(dir.path, 'pi.mjs'), 'export function run () { return 1 }\n')
})
afterAll(async () => { await dir.remove() })

describe('--burst on zp submit', () => {
  it('takes each engine in its own spelling', () => {
    expect(submitExtras({ burst: ['slurm:4', 'dask:tcp://10.0.0.5:8786', 'ray:3@http://10.0.0.5:8265', 'k8s:2@ghcr.io/lab/zp-node:0.1.0@sha256:abc'] })).toEqual({
      burst: {
        slurm: { nodes: 4 },
        dask: { scheduler: 'tcp://10.0.0.5:8786' },
        ray: { nodes: 3, address: 'http://10.0.0.5:8265' },
        k8s: { nodes: 2, image: 'ghcr.io/lab/zp-node:0.1.0@sha256:abc' }
      }
    })
  })

  it('refuses what it cannot read, naming every form', () => {
    for (const bad of ['ray:http://10.0.0.5:8265', 'ray:2@10.0.0.5:8265', 'k8s:0@img', 'k8s:img', 'aws:4']) {
      expect(() => submitExtras({ burst: [bad] }), bad).toThrow(/ray:N@DASHBOARD .*k8s:N@IMAGE/)
    }
  })
})

describe('a burst with maxCost', () => {
  const k8s = { nodes: 4, image: 'zp-node:0.1.0' }
  const estimate = { cost: 12.5, currency: 'USD', coreHours: 100, gpuHours: 0, hours: 3 }

  it('starts only with an estimate at or under it', () => {
    expect(burstRefusal({ k8s })).toBeUndefined()
    expect(burstRefusal({ k8s, maxCost: 20, estimate })).toBeUndefined()
    expect(burstRefusal({ k8s, maxCost: 12.5, estimate })).toBeUndefined()
    expect(burstRefusal({ k8s, maxCost: 20 })).toMatch(/no cost estimate.*zp submit FILE --prices/)
    expect(burstRefusal({ k8s, maxCost: 10, estimate })).toMatch(/estimated cost 12\.50 USD exceeds maxCost 10/)
  })

  it('is read from a campaign file, with idle as a duration, and refused with a misspelled field', async () => {
    const file = join(dir.path, 'burst.yaml')
    await writeFile(file, `
name: burst
workload: { kind: module, module: ./pi.mjs }
shards: { iterations: { total: 100, perShard: 10, seed: 1 } }
burst:
  k8s: { nodes: 2, image: "zp-node:0.1.0", cpu: "2", gpus: 1, idle: 5m }
  ray: { address: "http://head:8265", nodes: 3, numCpus: 4 }
  maxCost: 40
`)
    const loaded = await loadCampaignFile(file)
    expect(loaded.spec.burst).toEqual({
      k8s: { nodes: 2, image: 'zp-node:0.1.0', cpu: '2', gpus: 1, idleMs: 300_000 },
      ray: { address: 'http://head:8265', nodes: 3, numCpus: 4 },
      maxCost: 40
    })
    expect(BurstSchema.safeParse(loaded.spec.burst).success).toBe(true)
    await writeFile(file, `
name: burst
workload: { kind: module, module: ./pi.mjs }
shards: { iterations: { total: 100, perShard: 10, seed: 1 } }
burst: { k8s: { nodes: 2, image: "zp-node:0.1.0", gpu: 1 } }
`)
    await expect(loadCampaignFile(file)).rejects.toThrow(/gpu/)
  })
})

describe('zp-node --psk-env', () => {
  const key = '/key/swarm/psk/1.0.0/\n/base16/\n' + 'ab'.repeat(32) + '\n'

  it('reads the key text from the environment, as a Secret gives it', () => {
    expect(loadPskEnv('ZP_PSK', { ZP_PSK: key }).fingerprint).toMatch(/^[0-9a-f]{16}$/)
  })

  it('names the variable when it is unset or not a key', () => {
    expect(() => loadPskEnv('ZP_PSK', {})).toThrow(/ZP_PSK is not set/)
    expect(() => loadPskEnv('ZP_PSK', { ZP_PSK: 'hunter2' })).toThrow(/environment variable ZP_PSK is not a libp2p swarm key/)
  })
})
