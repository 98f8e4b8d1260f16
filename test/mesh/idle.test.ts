import { afterEach, describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import type { ZpNode } from '../../node/node.ts'
import { nodeDuties, type Duties } from '../../node/idle.ts'
import { waitFor } from '../helpers.ts'
import { campaignFiles, finished } from './campaigns.ts'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
const files = campaignFiles('zp-idle-')
afterEach(async () => {
  await mesh?.stop()
  await files.remove()
  mesh = undefined
})

const duties = async (node: ZpNode): Promise<Duties> => await nodeDuties(node.host, node.peerId, async () => await node.campaigns.list())()

describe('what keeps a node from being idle (zp-node --exit-when-idle)', () => {
  it('its shards, the unfinished campaigns it coordinates, the replicas it holds of unfinished campaigns; none once the campaign ended', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a', slots: 1 })
    const w = await mesh.start({ name: 'w', slots: 1, bootstrap: [multiaddr(a.multiaddrs()[0]!)], labels: { bridge: 'slurm' } })
    await waitForPeers(a, [w])
    expect(await duties(w)).toEqual({ tasks: 0, taken: 0, campaigns: 0, replicas: 0 })
    const s = await a.campaigns.submit({ file: await files.write('held', {
      shards: { iterations: { total: 20, perShard: 5, seed: 1 } }, params: { slowMs: 100 }, replicas: 1, requires: { labels: { bridge: 'slurm' } }
    }) })
    const busy = await waitFor(async () => {
      const d = await duties(w)
      return d.tasks > 0 && d.replicas === 1 ? d : undefined
    }, { what: 'w to run a shard and hold the replica' })
    expect(busy.taken).toBeGreaterThan(0)
    expect(await duties(a)).toMatchObject({ campaigns: 1, tasks: 0, replicas: 0 })
    await finished(a, s.id)
    expect(await duties(a)).toMatchObject({ campaigns: 0 })
    // the replica has the ended state (the end waits for it), and every result was acknowledged
    const idle = await waitFor(async () => {
      const d = await duties(w)
      return d.tasks === 0 && d.replicas === 0 ? d : undefined
    }, { what: 'w to be idle' })
    expect(idle).toMatchObject({ campaigns: 0 })
    expect(idle.taken).toBeGreaterThanOrEqual(4)
  })

  it('a node with exitWhenIdleMs and nothing to do drains and stops by itself; peers see it leave', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a', slots: 1 })
    const w = await mesh.start({ name: 'w', slots: 1, bootstrap: [multiaddr(a.multiaddrs()[0]!)], exitWhenIdleMs: 1500 })
    const transitions: string[] = []
    a.onPeerTransition(t => { if (t.peerId === w.peerId) transitions.push(`${t.to}${t.left ? ' (left)' : ''}`) })
    await waitFor(() => w.state === 'stopped', { timeoutMs: 30_000, what: 'w to stop by itself' })
    await waitFor(() => transitions.includes('dead (left)'), { what: 'a to see w leave' })
    expect(transitions).toContain('draining')
  })
})

describe('draining', () => {
  it('ends at the drain deadline when the work gives itself back, and soon after it when the work hangs', async () => {
    mesh = await createMesh()
    const prompt = await mesh.start({ name: 'prompt', drainTimeoutMs: 300 })
    let handedBackAt = 0
    prompt.onDrain(async (signal) => {
      await new Promise<void>(resolve => { signal.addEventListener('abort', () => { handedBackAt = Date.now(); resolve() }, { once: true }) })
    })
    let started = Date.now()
    await prompt.drain('test')
    expect(prompt.state).toBe('stopped')
    expect(handedBackAt - started).toBeGreaterThanOrEqual(290)
    expect(Date.now() - started).toBeLessThan(5000)

    const stuck = await mesh.start({ name: 'stuck', drainTimeoutMs: 300 })
    stuck.onDrain(async () => { await new Promise<void>(() => {}) })
    started = Date.now()
    await stuck.drain('test')
    expect(stuck.state).toBe('stopped')
    // the deadline, then 5 s for work to be handed back, then the stop
    expect(Date.now() - started).toBeLessThan(300 + 5000 + 5000)
  })
})
