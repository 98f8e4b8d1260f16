import { afterEach, describe, expect, it } from 'vitest'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { ZpNode } from '../../node/node.ts'
import { auditedResults, waitFor } from '../helpers.ts'
import { campaignFiles, exported, finished } from './campaigns.ts'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
const files = campaignFiles('zp-fo-')
const campaignFile = async (name: string, body: Record<string, unknown>): Promise<string> =>
  await files.write(name, { shards: { iterations: { total: 400, perShard: 10, seed: 5 } }, ...body })
afterEach(async () => {
  await mesh?.stop()
  await files.remove()
  mesh = undefined
})

/** a, the coordinator, and b and c joined through it (its replicas, by default); `blocked` cuts connections for a partition */
async function threeNodes (blocked?: Record<'a' | 'b' | 'c', Set<string>>): Promise<[ZpNode, ZpNode, ZpNode]> {
  mesh = await createMesh()
  const a = await mesh.start({ name: 'a', slots: 1, blocked: blocked?.a })
  const b = await mesh.start({ name: 'b', slots: 1, blocked: blocked?.b, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
  const c = await mesh.start({ name: 'c', slots: 1, blocked: blocked?.c, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
  await waitForPeers(a, [b, c])
  await waitForPeers(b, [a, c])
  await waitForPeers(c, [a, b])
  return [a, b, c]
}

describe('coordinator failover (in-process mesh)', () => {
  it('a replica takes over when the coordinator node goes for good, and the results equal a clean run', async () => {
    const file = await campaignFile('failover', { params: { slowMs: 5 } })
    const [a, b, c] = await threeNodes()
    const s = await a.campaigns.submit({ file })
    await waitFor(async () => {
      const st = await a.campaigns.status(s.id)
      return st != null && st.shards.done >= 8 && (st.replicas?.length ?? 0) === 2
    }, { what: 'eight shards done with two replicas' })
    await a.stop()
    const after = await waitFor(async () => {
      const st = await b.campaigns.status(s.id)
      return st != null && st.coordinator !== a.peerId && (st.term ?? 0) >= 1 ? st : undefined
    }, { timeoutMs: 60_000, what: 'a replica to take the campaign over' })
    const winner = after.coordinator === b.peerId ? b : c
    const other = winner === b ? c : b
    const done = await finished(winner, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: 40, done: 40, failed: 0 } })

    // the same campaign on one node, undisturbed
    const solo = await mesh!.start({ name: 'solo', slots: 2, replicas: 0 })
    const ref = await solo.campaigns.submit({ file: await campaignFile('failover', { params: { slowMs: 0 }, replicas: 0 }) })
    await finished(solo, ref.id)
    const reference = await exported(solo, ref.id)
    expect(await exported(winner, s.id)).toBe(reference)
    // the other replica has the whole result too, and says who coordinates
    await waitFor(async () => (await exported(other, s.id)) === reference, { what: 'the other replica to hold every result' })
    expect((await other.campaigns.status(s.id))?.coordinator).toBe(winner.peerId)
  })

  it('a partition cuts the coordinator off: the majority side takes over, the old coordinator stops leasing, and after the heal nothing is counted twice', async () => {
    const file = await campaignFile('partition', { params: { slowMs: 10 } })
    const blocked = { a: new Set<string>(), b: new Set<string>(), c: new Set<string>() }
    const [a, b, c] = await threeNodes(blocked)
    const s = await a.campaigns.submit({ file })
    await waitFor(async () => {
      const st = await a.campaigns.status(s.id)
      return st != null && st.shards.done >= 6 && (st.replicas?.length ?? 0) === 2
    }, { what: 'six shards done with two replicas' })

    // the partition: a on one side, b and c on the other; connections cut and refused
    blocked.a.add(b.peerId).add(c.peerId)
    blocked.b.add(a.peerId)
    blocked.c.add(a.peerId)
    await Promise.all([a.libp2p.hangUp(peerIdFromString(b.peerId)), a.libp2p.hangUp(peerIdFromString(c.peerId))])

    const taken = await waitFor(async () => {
      const st = await b.campaigns.status(s.id)
      return st != null && (st.term ?? 0) >= 1 && st.coordinator !== a.peerId ? st : undefined
    }, { timeoutMs: 60_000, what: 'the majority side to take the campaign over' })
    const winner = taken.coordinator === b.peerId ? b : c
    const done = await finished(winner, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: 40, done: 40, failed: 0 } })

    // the heal: a hears from the replicas that it was replaced, and stops for good
    blocked.a.clear()
    blocked.b.clear()
    blocked.c.clear()
    await a.libp2p.dial(multiaddr(winner.multiaddrs()[0]!))
    const oldAudit = join(a.dataDir, 'runs', s.id, 'audit.jsonl')
    const records = async (f: string): Promise<Array<Record<string, unknown>>> => (await readFile(f, 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    await waitFor(async () => (await records(oldAudit)).some(r => r.type === 'superseded'), { timeoutMs: 60_000, what: 'the old coordinator to learn it was replaced' })
    await waitFor(async () => (await a.campaigns.status(s.id))?.coordinator === winner.peerId, { what: 'status on the old coordinator to name the new one' })

    // fencing: every lease the old coordinator granted precedes the takeover
    const newAudit = await records(join(done.runDir, 'audit.jsonl'))
    const takeover = newAudit.find(r => r.type === 'takeover')!
    // the takeover names the new replica set
    expect(takeover.replicas).toEqual(expect.arrayContaining([(winner === b ? c : b).peerId]))
    const lastOldLease = (await records(oldAudit)).filter(r => r.type === 'leased').at(-1)!
    expect(lastOldLease.last as number).toBeLessThan(Date.parse(String(takeover.t)))
    // no shard counted twice by the new coordinator, and the rows equal a clean run
    expect(auditedResults(newAudit).length).toBe(40 - (takeover.done as number))
    const solo = await mesh!.start({ name: 'solo', slots: 2, replicas: 0 })
    const ref = await solo.campaigns.submit({ file: await campaignFile('partition', { params: { slowMs: 0 }, replicas: 0 }) })
    await finished(solo, ref.id)
    expect(await exported(winner, s.id)).toBe(await exported(solo, ref.id))
  })
})
