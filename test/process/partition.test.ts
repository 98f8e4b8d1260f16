import { beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { auditedResults, waitFor } from '../helpers.ts'
import { FAST_FLAGS, runCli } from './harness.ts'
import { auditOf, FINAL, labFixture, peersIn, referenceResults, squaresCampaign, statusIn, zpIn, type NsNode } from './netns-nodes.ts'

/*
 * A real network partition: the coordinator on one host (a network
 * namespace), two workers on another, on one switch; the coordinator's host
 * loses its link mid-campaign (nft drops every packet: open connections
 * stop getting answers on both sides, as in a real partition) and gets it
 * back later. Needs root, iproute2 and nftables; the test says it is skipped
 * otherwise.
 */

const SHARDS = { iterations: { total: 600, perShard: 10, seed: 11 } }
/** the coordinator's leader lease (actors/coordinator/replication.ts LEADER_LEASE_MS) */
const LEASE_MS = 3000

const fx = labFixture({ prefix: `zp${process.pid % 100000}`, hosts: 2, what: 'the partition test', packages: { nft: 'nftables' } })
/** the export of the same shards from an undisturbed one-node run */
let reference: string

/** host 1: the coordinator's side (A); host 2: the workers' (B) */
async function startNode (name: string, host: 1 | 2, via?: string): Promise<NsNode> {
  const h = fx.lab.host(host)
  return await fx.start({ name, dataDir: join(fx.scratch, name), join: via, listen: `/ip4/${h.underlay}/tcp/0`, wrap: h.wrap, args: [...FAST_FLAGS, '--slots', '2'] })
}

beforeAll(async () => {
  if (fx.skipReason == null) reference = await referenceResults(await squaresCampaign(fx.scratch, 'reference', SHARDS, {}))
})

describe('partition: real network namespaces, a host cut off and healed', () => {
  it('the coordinator cut off from its workers: a replica takes over, finishes, the old coordinator learns it, no result counted twice', { timeout: 420_000 }, async ({ skip }) => {
    if (fx.skipReason != null) skip()
    const coord = await startNode('coord', 1)
    const via = coord.node.info!.multiaddrs.find(a => a.includes(`/ip4/${fx.lab.host(1).underlay}/`))!
    const workers = [await startNode('w1', 2, via), await startNode('w2', 2, via)]
    // everyone alive to everyone (the replicas vote among themselves once cut off), capabilities known
    for (const n of [coord, ...workers]) {
      await waitFor(async () => {
        const ps = await peersIn(n)
        return ['coord', 'w1', 'w2'].filter(x => x !== n.node.name).every(x => ps.find(p => p.name === x)?.state === 'alive') && ps.every(p => p.capabilities != null)
      }, { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to see the others alive` })
    }

    // slower shards than chaos.test.ts (about 1 s each): every look at a node here is a zp process (about 2 s)
    const id = (await zpIn(coord, ['submit', await squaresCampaign(fx.scratch, 'partition', SHARDS, { slowMs: 100 })])).trim()
    const before = await waitFor(async () => {
      const s = await statusIn(coord, id)
      return s.shards.done >= 10 && s.replicas?.length === 2 ? s : undefined
    }, { timeoutMs: 60_000, intervalMs: 200, what: 'ten shards done, with two replicas' })
    expect(before.state).toBe('RUNNING')

    // the partition: every packet in or out of A's link dropped; connections time out on both sides
    fx.lab.cut(1)
    const cutAt = Date.now()
    // each side answers zp status from what it knows, at once (the CLI gives up after 15 s), marked as possibly behind
    const [aSide, bSide] = await Promise.all([statusIn(coord, id), statusIn(workers[0]!, id)])
    expect.soft(aSide).toMatchObject({ coordinator: coord.peerId })
    expect.soft(bSide.stale === true || (bSide.term ?? 0) >= 1, `B's answer is marked stale or comes from the new coordinator: ${JSON.stringify(bSide)}`).toBe(true)

    // on B's side, a replica is elected and takes over
    const taken = await waitFor(async () => {
      const s = await statusIn(workers[1]!, id)
      return s.term === 1 && workers.some(w => w.peerId === s.coordinator) ? s : undefined
    }, { timeoutMs: 90_000, intervalMs: 500, what: 'a replica to take the campaign over' })
    const tookOverMs = Date.now() - cutAt
    const winner = workers.find(w => w.peerId === taken.coordinator)!
    const other = workers.find(w => w !== winner)!
    const done = await waitFor(async () => {
      const s = await statusIn(other, id)
      return FINAL.includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, intervalMs: 500, what: 'the campaign to end on B\'s side' })
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 }, coordinator: winner.peerId })

    // still cut off, the old coordinator has not finished the campaign on its own
    const cutOff = await statusIn(coord, id)
    expect.soft(cutOff).toMatchObject({ state: 'RUNNING', coordinator: coord.peerId })

    fx.lab.heal(1)
    const healedAt = Date.now()

    // the old coordinator learns it was superseded (peers redial dead peers with backoff: give it time)
    const superseded = await waitFor(async () => (await auditOf(cutOff.runDir)).find(r => r.type === 'superseded'), { timeoutMs: 120_000, intervalMs: 500, what: 'the old coordinator to learn it was superseded' })
    const learnedMs = Date.now() - healedAt
    expect(superseded).toMatchObject({ by: winner.peerId, term: 1 })
    const listed = await waitFor(async () => (JSON.parse(await zpIn(coord, ['runs', '--json'])) as CampaignStatus[]).find(s => s.id === id && s.coordinator !== coord.peerId), { timeoutMs: 30_000, intervalMs: 500, what: 'the old coordinator to list the campaign as moved' })
    expect(listed.coordinator).toBe(winner.peerId)
    // fenced: cut off from its replicas, the old coordinator leases nothing once the lease they confirmed
    // before the cut has run out (soft: the checks of the new coordinator's results below still run)
    const lateLeases = (await auditOf(cutOff.runDir))
      .filter(r => r.type === 'leased' && (r.last as number) > cutAt + LEASE_MS + 2000)
      .map(r => `${String(r.t)} to ${String(r.worker).slice(-8)}: shards ${String(r.shards)}`)
    expect.soft(lateLeases, 'leases the old coordinator made after its leader lease ran out').toEqual([])

    // the export from the new coordinator equals a clean one-node run, byte for byte
    expect(await zpIn(winner, ['results', id, '--format', 'jsonl'])).toBe(reference)
    // its audit log starts at the takeover; no shard done before it was counted again, none twice
    const records = await waitFor(async () => {
      const rs = await auditOf((await statusIn(winner, id)).runDir)
      return rs.some(r => r.type === 'finished') ? rs : undefined
    }, { what: 'the new coordinator\'s audit log to close' })
    const takeover = records.find(r => r.type === 'takeover')
    expect(takeover).toMatchObject({ term: 1, previous: coord.peerId })
    const results = auditedResults(records)
    expect(results.length).toBe(60 - (takeover!.done as number))
    expect(new Set(results).size).toBe(results.length)
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', winner.node.dataDir], { wrap: winner.wrap })).code).toBe(0)
    console.info(`partition: a replica took over within ${tookOverMs} ms of the cut (${String(takeover!.done)} shards done then); the old coordinator learned it within ${learnedMs} ms of the heal`)
  })
})
