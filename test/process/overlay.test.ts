import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { LocalNode } from '../../bootstrap/local.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { missingPackages, NetnsLab, type LabHost } from '../clusters/netns.ts'
import { auditedResults, shardsOf, tempDir, waitFor } from '../helpers.ts'
import { FAST_FLAGS, createProcessMesh, runCli } from './harness.ts'

/*
 * The WireGuard overlay as a lab would build it: `zp-node wireguard init` on an inventory of three hosts
 * (network namespaces on one switch), each brought up with `wg-quick up` of its generated config (userspace
 * wireguard-go), and a node on each started from its generated environment file: listening and announcing
 * on its overlay address only, with the generated mesh key. A campaign runs across the three; one host's
 * underlay is cut (nft drop) mid-campaign, the others mark it DEAD and run its shards, and after the heal
 * it is ALIVE again, with nothing counted twice.
 */

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = { iterations: { total: 600, perShard: 10, seed: 23 } }
const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED']
const PREFIX = `zo${process.pid % 100000}`
const HOSTS = ['lab1', 'lab2', 'lab3']

let lab: NetnsLab | undefined
let skipReason: string | undefined
let scratch: { path: string, remove: () => Promise<void> }
let reference: string
let nodes: LocalNode[] = []

interface OverlayNode {
  node: LocalNode
  host: LabHost
  peerId: string
  /** what its zp-node.env says */
  env: Record<string, string>
}

/** The generated environment file as the shell (systemd's EnvironmentFile= reads the same syntax) sees it. */
function readEnvFile (file: string): Record<string, string> {
  const names = ['ZP_NAME', 'ZP_LISTEN', 'ZP_ANNOUNCE', 'ZP_BOOTSTRAP', 'ZP_PSK_FILE', 'ZP_COMMAND', 'ZP_ARGS']
  const out = execFileSync('bash', ['-c', `set -a; . "$1"; printf '%s\\0' ${names.map(n => `"$${n}"`).join(' ')}`, 'env', file]).toString()
  const values = out.split('\0')
  return Object.fromEntries(names.map((n, i) => [n, values[i]!]))
}

async function zp (n: OverlayNode, args: string[]): Promise<string> {
  const r = await runCli('zp', [...args, '--data-dir', n.node.dataDir], { wrap: n.host.wrap })
  if (r.code !== 0) throw new Error(`zp ${args.join(' ')} on ${n.node.name} exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

async function peers (n: OverlayNode): Promise<PeerJson[]> {
  return JSON.parse(await zp(n, ['peers', '--json'])) as PeerJson[]
}

async function status (n: OverlayNode, id: string): Promise<CampaignStatus> {
  return JSON.parse(await zp(n, ['status', id, '--json'])) as CampaignStatus
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

/** Starts host i's node the way its env file says (join $ZP_BOOTSTRAP --listen --announce --name), with the generated mesh key. */
async function startFromEnv (overlay: string, index: number): Promise<OverlayNode> {
  const host = lab!.host(index)
  const name = HOSTS[index - 1]!
  const env = readEnvFile(join(overlay, name, 'zp-node.env'))
  const bootstrap = env.ZP_BOOTSTRAP!.split(' ')
  expect(bootstrap).toHaveLength(1)
  const node = await LocalNode.spawn({
    name: env.ZP_NAME!,
    dataDir: join(scratch.path, name),
    join: bootstrap[0],
    listen: env.ZP_LISTEN,
    wrap: host.wrap,
    // the env file names where the key goes on a real host (/etc/zp-node/mesh.key); here it stays in the overlay folder
    args: ['--announce', env.ZP_ANNOUNCE!, '--psk', join(overlay, 'mesh.key'), ...FAST_FLAGS, '--slots', '2']
  })
  nodes.push(node)
  const info = await node.ready({ timeoutMs: 60_000 })
  return { node, host, peerId: info.peerId, env }
}

beforeAll(async () => {
  const missing = missingPackages({ 'wireguard-go': 'wireguard-go', 'wg-quick': 'wireguard-tools', nft: 'nftables', bash: 'bash' })
  if (missing.length > 0) {
    skipReason = `install ${missing.join(' ')} (Debian packages)`
  } else {
    const made = NetnsLab.create(PREFIX, HOSTS.length)
    if (typeof made === 'string') skipReason = made
    else lab = made
  }
  if (skipReason != null) {
    console.warn(`skipped: the WireGuard overlay test cannot run here: ${skipReason}`)
    return
  }
  scratch = await tempDir('zp-overlay-')
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
  lab?.remove()
  if (scratch == null) return
  if (failed) console.warn(`kept the nodes' data dirs (logs/node.log) for a look: ${scratch.path}`)
  else await scratch.remove()
})

describe('WireGuard overlay from zp-node wireguard init, three namespaces', () => {
  it('a campaign across the overlay equals a local run; a host cut off is DEAD, its shards run elsewhere, and it is ALIVE after the heal', { timeout: 420_000 }, async ({ skip }) => {
    if (skipReason != null) skip()
    const overlay = join(scratch.path, 'overlay')
    const inventory = join(scratch.path, 'hosts.yaml')
    await writeFile(inventory, [
      'cidr: 10.201.0.0/24',
      'hosts:',
      ...HOSTS.map((name, i) => `  - { name: ${name}, endpoint: "10.200.0.${i + 1}:51820"${i === 0 ? ', role: bootstrap' : ''} }`)
    ].join('\n') + '\n')
    const init = await runCli('zp-node', ['wireguard', 'init', '--inventory', inventory, '--out', overlay])
    expect(init.code, init.stderr).toBe(0)
    for (const h of lab!.hosts) await lab!.wireguardUp(h.index, join(overlay, HOSTS[h.index - 1]!, 'zp0.conf'), `${PREFIX}w${h.index}`, scratch.path)

    const first = await startFromEnv(overlay, 1)
    const all = [first, await startFromEnv(overlay, 2), await startFromEnv(overlay, 3)]
    const byName = (name: string): OverlayNode => all.find(n => n.node.name === name)!
    for (const n of all) {
      await waitFor(async () => {
        const ps = await peers(n)
        return HOSTS.every(x => ps.find(p => p.name === x)?.state === 'alive') && ps.every(p => p.capabilities != null)
      }, { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to see the three hosts alive` })
    }

    // each is known by its overlay address and by nothing else: it listens and announces only there
    const seen = await peers(first)
    for (const [i, name] of HOSTS.entries()) {
      const p = seen.find(x => x.name === name)!
      expect(p.multiaddrs.map(a => a.replace(/\/p2p\/.*$/, ''))).toEqual([`/ip4/10.201.0.${i + 1}/tcp/4170`])
    }
    const table = await zp(first, ['peers'])
    for (const i of [1, 2, 3]) expect(table).toContain(`10.201.0.${i}:4170`)
    // and the traffic went through WireGuard: every host has a handshake with both others
    for (const h of lab!.hosts) {
      const shakes = [...lab!.handshakes(h.index, `${PREFIX}w${h.index}`).values()]
      expect(shakes.length).toBe(2)
      expect(shakes.every(t => t > 0), `handshakes of host ${h.index}: ${shakes.join(', ')}`).toBe(true)
    }

    // about one second a shard: lab3 holds leases when it is cut off
    const id = (await zp(first, ['submit', await campaignFile('overlay', { slowMs: 100 })])).trim()
    const victim = byName('lab3')
    await waitFor(async () => {
      const s = await status(first, id)
      const audit = await auditOf(s.runDir)
      return s.shards.done >= 6 && audit.some(r => r.type === 'leased' && r.worker === victim.peerId) ? s : undefined
    }, { timeoutMs: 60_000, intervalMs: 200, what: 'six shards done and lab3 holding leases' })
    lab!.cut(3)

    for (const n of [first, byName('lab2')]) {
      await waitFor(async () => (await peers(n)).find(p => p.name === 'lab3')?.state === 'dead', { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to mark lab3 DEAD` })
    }
    const done = await waitFor(async () => {
      const s = await status(first, id)
      return FINAL.includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, intervalMs: 500, what: 'the campaign to end without lab3' })
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 }, coordinator: first.peerId })
    expect(await zp(first, ['results', id, '--format', 'jsonl'])).toBe(reference)

    const records = await auditOf(done.runDir)
    // lab3's leases were handed back and those shards' results came from the two others
    const requeued = records.filter(r => r.type === 'requeued').flatMap(r => r.shards as number[])
    expect(requeued.length, 'shards requeued when lab3 was lost').toBeGreaterThan(0)
    const byWorker = new Map<number, string>()
    for (const r of records.filter(r => r.type === 'results')) for (const s of shardsOf(r.shards)) byWorker.set(s, r.worker as string)
    for (const s of requeued) expect(byWorker.get(s), `who delivered requeued shard ${s}`).not.toBe(victim.peerId)
    const results = auditedResults(records)
    expect(results.length).toBe(60)
    expect(new Set(results).size).toBe(60)

    lab!.heal(3)
    for (const n of [first, byName('lab2')]) {
      await waitFor(async () => (await peers(n)).find(p => p.name === 'lab3')?.state === 'alive', { timeoutMs: 120_000, intervalMs: 500, what: `${n.node.name} to see lab3 ALIVE after the heal` })
    }
    await waitFor(async () => {
      const ps = await peers(victim)
      return ['lab1', 'lab2'].every(x => ps.find(p => p.name === x)?.state === 'alive')
    }, { timeoutMs: 120_000, intervalMs: 500, what: 'lab3 to see the others ALIVE after the heal' })
    // whatever lab3 delivered late was not counted again
    const after = auditedResults(await auditOf(done.runDir))
    expect(after.length).toBe(60)
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', first.node.dataDir], { wrap: first.host.wrap })).code).toBe(0)
  })
})
