import { afterAll, describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import type { ZpNode } from '../../node/node.ts'
import { waitFor } from '../helpers.ts'
import { createMesh, FAST_TIMINGS, waitForPeers, type Mesh } from './harness.ts'

/*
 * Bridges put many nodes on one host (Slurm array tasks on one compute node,
 * Dask workers side by side), and allocations come and go. gossipsub's
 * default peer scoring penalises many peers behind one IP (and remembers
 * departed peers for an hour): past about 14, a coordinator stopped hearing
 * the heartbeats of every new node from that host, and took it for dead.
 */
let mesh: Mesh

afterAll(async () => { await mesh?.stop() })

describe('many nodes from one host', () => {
  it('a node keeps hearing the heartbeats of the 17th and later peers from its own IP, after others came and went', async () => {
    mesh = await createMesh()
    const hub = await mesh.start({ name: 'hub' })
    const addr = multiaddr(hub.multiaddrs()[0]!)
    const join = async (name: string): Promise<ZpNode> => await mesh.start({ name, bootstrap: [addr] })
    // allocations that came and went: twelve nodes, each joined, seen, and stopped
    for (let i = 0; i < 12; i++) {
      const n = await join(`gone-${i}`)
      await waitForPeers(hub, [n])
      await n.stop()
      mesh.nodes.splice(mesh.nodes.indexOf(n), 1)
    }
    const fresh = await Promise.all(Array.from({ length: 5 }, async (_, i) => await join(`new-${i}`)))
    await waitForPeers(hub, fresh, 'alive', 60_000)
    // heartbeats keep coming: the hub hears each of them well past the point where a silent peer is dead
    const since = Date.now()
    await waitFor(async () => {
      const view = await hub.peers()
      const seen = fresh.map(n => view.find(v => v.peerId === n.peerId))
      return seen.every(v => v?.state === 'alive' && v.lastSeenMs > since + FAST_TIMINGS.deadAfterMs) ? seen : undefined
    }, { timeoutMs: 60_000, what: 'the hub to hear the new nodes\' heartbeats past the dead-after time' })
    expect((await hub.peers()).filter(p => fresh.some(n => n.peerId === p.peerId)).map(p => p.state)).toEqual(['alive', 'alive', 'alive', 'alive', 'alive'])
  })
})
