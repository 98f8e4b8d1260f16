import { afterEach, describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { waitFor } from '../helpers.ts'
import { campaignFiles, finished } from './campaigns.ts'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
const files = campaignFiles('zp-labels-')
afterEach(async () => {
  await mesh?.stop()
  await files.remove()
  mesh = undefined
})

describe('node labels', () => {
  it('a campaign requiring bridge=slurm runs only on the labelled node of three; one requiring a label nobody has waits, naming it', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a', slots: 2 })
    const via = [multiaddr(a.multiaddrs()[0]!)]
    const b = await mesh.start({ name: 'b', slots: 2, bootstrap: via })
    const c = await mesh.start({ name: 'c', slots: 2, bootstrap: via, labels: { bridge: 'slurm', 'slurm.job': '42' } })
    await waitForPeers(a, [b, c])
    // the labels travel with c's capability report (a fixed report here, as probing is skipped)
    await waitFor(async () => (await a.peers()).find(p => p.name === 'c')?.capabilities?.labels?.bridge === 'slurm', { what: 'a to see c\'s labels' })

    const slurm = await a.campaigns.submit({ file: await files.write('on-slurm', { shards: { iterations: { total: 120, perShard: 10, seed: 1 } }, requires: { labels: { bridge: 'slurm' } } }) })
    const done = await finished(a, slurm.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: 12, done: 12, failed: 0 } })
    expect(done.workers.map(w => w.name)).toEqual(['c'])
    // the summary's per-node totals: every shard on c, none elsewhere
    const perNode = (await a.campaigns.summary(slurm.id))!.split('## Per node')[1]!.split('##')[0]!
    expect(perNode.split('\n').filter(l => /^\| [a-z]/.test(l) && !l.startsWith('| node'))).toEqual([expect.stringMatching(/^\| c \| 12 \| 0 \|/)])

    const dask = await a.campaigns.submit({ file: await files.write('on-dask', { shards: { iterations: { total: 20, perShard: 10, seed: 1 } }, requires: { labels: { bridge: 'dask' } } }) })
    const waiting = await waitFor(async () => (await a.campaigns.status(dask.id))?.waiting, { what: 'a waiting reason' })
    expect(waiting).toMatch(/^no peer meets the requirements \(label bridge=dask\): /)
    expect(waiting).toContain('a lacks label bridge=dask (has none)')
    expect(waiting).toContain('c lacks label bridge=dask (has bridge=slurm)')
    expect(waiting).toMatch(/start a node with --label bridge=dask \(zp-node start\|join\), or bring nodes up with zp bridge dask up/)
    expect((await a.campaigns.status(dask.id))?.state).toBe('QUEUED')
    expect((await a.campaigns.cancel(dask.id))?.state).toBe('CANCELLED')
  })
})
