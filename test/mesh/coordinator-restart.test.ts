import { afterEach, describe, expect, it, vi } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { CampaignStore } from '../../actors/coordinator/store.ts'
import { waitFor } from '../helpers.ts'
import { campaignFiles, exported, finished } from './campaigns.ts'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
const files = campaignFiles('zp-cr-')
afterEach(async () => {
  vi.restoreAllMocks()
  await mesh?.stop()
  await files.remove()
  mesh = undefined
})

describe('a crash inside the coordinator actor', () => {
  it('a plain Error in a handler mid-campaign restarts the coordinator, which picks every live campaign up again: nothing lost, nothing twice', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a', slots: 2 })
    const b = await mesh.start({ name: 'b', slots: 2, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    await waitForPeers(a, [b])
    const file = await files.write('crashy', { shards: { iterations: { total: 600, perShard: 10, seed: 3 } }, params: { slowMs: 20 } })
    const s = await a.campaigns.submit({ file })
    await waitFor(async () => ((await a.campaigns.status(s.id))?.shards.done ?? 0) >= 8, { what: 'eight shards done' })

    // a LevelDB read error while answering a status: not a typed actor error, so the actor crashes and is restarted
    const read = CampaignStore.prototype.campaign
    vi.spyOn(CampaignStore.prototype, 'campaign').mockImplementation(async function (this: CampaignStore, id: string) {
      if (id === 'c-crashme000') throw new Error('simulated LevelDB read error')
      return await read.call(this, id)
    })
    await expect(a.campaigns.status('c-crashme000')).rejects.toMatchObject({ name: 'ActorFailedError' })

    const done = await finished(a, s.id, 90_000)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: 60, done: 60, failed: 0 } })
    const rows = (await exported(a, s.id)).trim().split('\n').map(l => JSON.parse(l) as { item: number })
    expect(rows.map(r => r.item)).toEqual(Array.from({ length: 600 }, (_, i) => i))
    // the summary counts every shard, including those stored before the restart
    const summary = (await a.campaigns.summary(s.id))!
    const perNode = [...summary.matchAll(/^\| (a|b) \| (\d+) \|/gm)].reduce((n, m) => n + Number(m[2]), 0)
    expect(perNode).toBe(60)
  })
})
