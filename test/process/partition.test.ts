import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { LocalNode } from '../../bootstrap/local.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { auditedResults, tempDir, waitFor } from '../helpers.ts'
import { FAST_FLAGS, createProcessMesh, runCli } from './harness.ts'

/*
 * A real network partition: the coordinator in one network namespace, two
 * workers in another, joined by a veth pair; the link goes down mid-campaign
 * and comes back up later. Needs root (netns and veth) and iproute2; the
 * test says it is skipped otherwise.
 */

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = { iterations: { total: 600, perShard: 10, seed: 11 } }
const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED']
/** the coordinator's leader lease (actors/coordinator/replication.ts LEADER_LEASE_MS) */
const LEASE_MS = 3000

const NS_A = `zp-pa-${process.pid}`
const NS_B = `zp-pb-${process.pid}`
// interface names: at most 15 characters
const VETH_A = `zpa${process.pid}`
const VETH_B = `zpb${process.pid}`
const ADDR_A = '10.200.0.1'
const ADDR_B = '10.200.0.2'

function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' })
}

/** Two namespaces joined by a veth pair; the reason it could not be done, or nothing. */
function createNamespaces (): string | undefined {
  try {
    ip('netns', 'add', NS_A)
    ip('netns', 'add', NS_B)
    ip('link', 'add', VETH_A, 'type', 'veth', 'peer', 'name', VETH_B)
    ip('link', 'set', VETH_A, 'netns', NS_A)
    ip('link', 'set', VETH_B, 'netns', NS_B)
    for (const [ns, dev, addr] of [[NS_A, VETH_A, ADDR_A], [NS_B, VETH_B, ADDR_B]] as const) {
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev)
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'link', 'set', dev, 'up')
    }
    return undefined
  } catch (err) {
    removeNamespaces()
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
    return e.code === 'ENOENT' ? 'the ip command (iproute2) is not installed' : (e.stderr?.toString().trim() ?? e.message.split('\n')[0]!)
  }
}

/** Deleting a namespace deletes the veth end inside it, and with it the pair. */
function removeNamespaces (): void {
  for (const ns of [NS_A, NS_B]) {
    try {
      ip('netns', 'delete', ns)
    } catch {}
  }
}

const inA = ['ip', 'netns', 'exec', NS_A]
const inB = ['ip', 'netns', 'exec', NS_B]

let skipReason: string | undefined
let scratch: { path: string, remove: () => Promise<void> }
/** the export of the same shards from an undisturbed one-node run */
let reference: string
let nodes: LocalNode[] = []

/** A node in a namespace, its API on that namespace's loopback: reached with the zp CLI run inside it. */
interface NsNode {
  node: LocalNode
  ns: string[]
  peerId: string
}

async function startNode (name: string, ns: string[], addr: string, via?: string): Promise<NsNode> {
  const node = await LocalNode.spawn({
    name, dataDir: join(scratch.path, name), join: via, listen: `/ip4/${addr}/tcp/0`, wrap: ns, args: [...FAST_FLAGS, '--slots', '2']
  })
  nodes.push(node)
  const info = await node.ready({ timeoutMs: 60_000 })
  return { node, ns, peerId: info.peerId }
}

async function zp (n: NsNode, args: string[]): Promise<string> {
  const r = await runCli('zp', [...args, '--data-dir', n.node.dataDir], { wrap: n.ns })
  if (r.code !== 0) throw new Error(`zp ${args.join(' ')} on ${n.node.name} exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

async function status (n: NsNode, id: string): Promise<CampaignStatus> {
  return JSON.parse(await zp(n, ['status', id, '--json'])) as CampaignStatus
}

async function peers (n: NsNode): Promise<PeerJson[]> {
  return JSON.parse(await zp(n, ['peers', '--json'])) as PeerJson[]
}

async function auditOf (runDir: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(runDir, 'audit.jsonl'), 'utf8').catch(() => '')
  return text.trim().split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
}

async function campaignFile (name: string, params: Record<string, unknown>): Promise<string> {
  const file = join(scratch.path, `${name}.json`)
  await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, shards: SHARDS, params, retry: { maxAttempts: 3, initialDelay: '50ms' } }))
  return file
}

beforeAll(async () => {
  skipReason = createNamespaces()
  if (skipReason != null) {
    console.warn(`skipped: cannot create network namespaces here (${skipReason}); the partition test needs root and iproute2`)
    return
  }
  scratch = await tempDir('zp-partition-')
  const m = await createProcessMesh()
  try {
    const solo = await m.start('reference', { args: ['--slots', '2'] })
    const id = (await runCli('zp', ['submit', await campaignFile('reference', {}), '--data-dir', solo.dataDir])).stdout.trim()
    const client = await m.api(solo)
    await waitFor(async () => FINAL.includes((await client.get<CampaignStatus>(`/v1/campaigns/${id}`)).state), { timeoutMs: 120_000, what: 'the reference run to end' })
    reference = await client.get<string>(`/v1/campaigns/${id}/results?format=jsonl`)
  } finally {
    await m.stop()
  }
})

let failed = false
afterEach(async (ctx) => {
  failed = ctx.task.result?.state === 'fail'
  await Promise.all(nodes.map(async n => await n.stop(10_000)))
  nodes = []
})

afterAll(async () => {
  if (skipReason != null) return
  removeNamespaces()
  if (failed) console.warn(`kept the nodes' data dirs (logs/node.log) for a look: ${scratch.path}`)
  else await scratch.remove()
})

describe('partition: real network namespaces, a veth pair cut and healed', () => {
  it('the coordinator cut off from its workers: a replica takes over, finishes, the old coordinator learns it, no result counted twice', { timeout: 420_000 }, async ({ skip }) => {
    if (skipReason != null) skip()
    const coord = await startNode('coord', inA, ADDR_A)
    const via = coord.node.info!.multiaddrs.find(a => a.includes(`/ip4/${ADDR_A}/`))!
    const workers = [await startNode('w1', inB, ADDR_B, via), await startNode('w2', inB, ADDR_B, via)]
    // everyone alive to everyone (the replicas vote among themselves once cut off), capabilities known
    for (const n of [coord, ...workers]) {
      await waitFor(async () => {
        const ps = await peers(n)
        return ['coord', 'w1', 'w2'].filter(x => x !== n.node.name).every(x => ps.find(p => p.name === x)?.state === 'alive') && ps.every(p => p.capabilities != null)
      }, { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to see the others alive` })
    }

    // slower shards than chaos.test.ts (about 1 s each): every look at a node here is a zp process (about 2 s)
    const id = (await zp(coord, ['submit', await campaignFile('partition', { slowMs: 100 })])).trim()
    const before = await waitFor(async () => {
      const s = await status(coord, id)
      return s.shards.done >= 10 && s.replicas?.length === 2 ? s : undefined
    }, { timeoutMs: 60_000, intervalMs: 200, what: 'ten shards done, with two replicas' })
    expect(before.state).toBe('RUNNING')

    // the partition: link down on A's side (B's end loses its carrier). Open connections just stop
    // getting answers on both sides, as in a real partition (TCP retransmits into the void); new dials
    // fail at once in A ("network unreachable") and time out in B. Heal: link up.
    ip('-n', NS_A, 'link', 'set', VETH_A, 'down')
    const cutAt = Date.now()
    // each side answers zp status from what it knows, at once (the CLI gives up after 15 s), marked as possibly behind
    const [aSide, bSide] = await Promise.all([status(coord, id), status(workers[0]!, id)])
    expect.soft(aSide).toMatchObject({ coordinator: coord.peerId })
    expect.soft(bSide.stale === true || (bSide.term ?? 0) >= 1, `B's answer is marked stale or comes from the new coordinator: ${JSON.stringify(bSide)}`).toBe(true)

    // on B's side, a replica is elected and takes over
    const taken = await waitFor(async () => {
      const s = await status(workers[1]!, id)
      return s.term === 1 && workers.some(w => w.peerId === s.coordinator) ? s : undefined
    }, { timeoutMs: 90_000, intervalMs: 500, what: 'a replica to take the campaign over' })
    const tookOverMs = Date.now() - cutAt
    const winner = workers.find(w => w.peerId === taken.coordinator)!
    const other = workers.find(w => w !== winner)!
    const done = await waitFor(async () => {
      const s = await status(other, id)
      return FINAL.includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, intervalMs: 500, what: 'the campaign to end on B\'s side' })
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 }, coordinator: winner.peerId })

    // still cut off, the old coordinator has not finished the campaign on its own
    const cutOff = await status(coord, id)
    expect.soft(cutOff).toMatchObject({ state: 'RUNNING', coordinator: coord.peerId })

    ip('-n', NS_A, 'link', 'set', VETH_A, 'up')
    const healedAt = Date.now()

    // the old coordinator learns it was superseded (peers redial dead peers with backoff: give it time)
    const superseded = await waitFor(async () => (await auditOf(cutOff.runDir)).find(r => r.type === 'superseded'), { timeoutMs: 120_000, intervalMs: 500, what: 'the old coordinator to learn it was superseded' })
    const learnedMs = Date.now() - healedAt
    expect(superseded).toMatchObject({ by: winner.peerId, term: 1 })
    const listed = await waitFor(async () => (JSON.parse(await zp(coord, ['runs', '--json'])) as CampaignStatus[]).find(s => s.id === id && s.coordinator !== coord.peerId), { timeoutMs: 30_000, intervalMs: 500, what: 'the old coordinator to list the campaign as moved' })
    expect(listed.coordinator).toBe(winner.peerId)
    // fenced: cut off from its replicas, the old coordinator leases nothing once the lease they confirmed
    // before the cut has run out (soft: the checks of the new coordinator's results below still run)
    const lateLeases = (await auditOf(cutOff.runDir))
      .filter(r => r.type === 'leased' && (r.last as number) > cutAt + LEASE_MS + 2000)
      .map(r => `${String(r.t)} to ${String(r.worker).slice(-8)}: shards ${String(r.shards)}`)
    expect.soft(lateLeases, 'leases the old coordinator made after its leader lease ran out').toEqual([])

    // the export from the new coordinator equals a clean one-node run, byte for byte
    expect(await zp(winner, ['results', id, '--format', 'jsonl'])).toBe(reference)
    // its audit log starts at the takeover; no shard done before it was counted again, none twice
    const records = await waitFor(async () => {
      const rs = await auditOf((await status(winner, id)).runDir)
      return rs.some(r => r.type === 'finished') ? rs : undefined
    }, { what: 'the new coordinator\'s audit log to close' })
    const takeover = records.find(r => r.type === 'takeover')
    expect(takeover).toMatchObject({ term: 1, previous: coord.peerId })
    const results = auditedResults(records)
    expect(results.length).toBe(60 - (takeover!.done as number))
    expect(new Set(results).size).toBe(results.length)
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', winner.node.dataDir], { wrap: winner.ns })).code).toBe(0)
    console.info(`partition: a replica took over within ${tookOverMs} ms of the cut (${String(takeover!.done)} shards done then); the old coordinator learned it within ${learnedMs} ms of the heal`)
  })
})
