import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadCampaignObject, MAX_SHARDS } from '../../node/campaign/load.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => {
  dir = await tempDir('zp-limits-')
  await writeFile(join(dir.path, 'noop.mjs'), 'export function run () { return 1 }\n')
})
afterAll(async () => { await dir.remove() })

const campaign = (shards: unknown): unknown => ({ name: 'big', workload: { kind: 'module', module: './noop.mjs' }, shards })

describe('campaign size', () => {
  it('refuses more shards than a coordinator can track, naming the limit and the perShard that fits', async () => {
    const err = await loadCampaignObject(campaign({ iterations: { total: 1e12, perShard: 1, seed: 1 } }), dir.path, {}).then(() => undefined, (e: unknown) => e as Error)
    expect(err?.name).toBe('CampaignFileError')
    expect(err?.message).toBe('campaign: shards.iterations.perShard: 1,000,000,000,000 shards is more than a campaign may have (1,000,000,000); raise perShard to at least 1,000, or split the campaign')
    const grid = { parameters: { a: Array.from({ length: 100_000 }, (_, i) => i), b: Array.from({ length: 100_000 }, (_, i) => i) } }
    await expect(loadCampaignObject(campaign({ grid }), dir.path, {})).rejects.toThrow(/shards\.grid\.perShard: 10,000,000,000 shards is more than/)
  })

  it('accepts a campaign of exactly the limit', async () => {
    const loaded = await loadCampaignObject(campaign({ iterations: { total: MAX_SHARDS * 3, perShard: 3, seed: 1 } }), dir.path, {})
    expect(loaded.sharding).toMatchObject({ kind: 'iterations', total: MAX_SHARDS * 3, perShard: 3 })
  })
})
