import { beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { LabHost } from '../clusters/netns.ts'
import { auditedResults, shardsOf, waitFor } from '../helpers.ts'
import { FAST_FLAGS, runCli } from './harness.ts'
import { auditOf, FINAL, labFixture, peersIn, referenceResults, squaresCampaign, statusIn, zpIn, type NsNode } from './netns-nodes.ts'

/*
 * The WireGuard overlay as a lab would build it: `zp-node wireguard init` on an inventory of three hosts
 * (network namespaces on one switch), each brought up with `wg-quick up` of its generated config (userspace
 * wireguard-go), and a node on each started from its generated environment file: listening and announcing
 * on its overlay address only, with the generated mesh key. A campaign runs across the three; one host's
 * underlay is cut (nft drop) mid-campaign, the others mark it DEAD and run its shards, and after the heal
 * it is ALIVE again, with nothing counted twice.
 */

const SHARDS = { iterations: { total: 600, perShard: 10, seed: 23 } }
const PREFIX = `zo${process.pid % 100000}`
const HOSTS = ['lab1', 'lab2', 'lab3']

const fx = labFixture({
  prefix: PREFIX,
  hosts: HOSTS.length,
  what: 'the WireGuard overlay test',
  packages: { 'wireguard-go': 'wireguard-go', 'wg-quick': 'wireguard-tools', nft: 'nftables' }
})
/** the export of the same shards from an undisturbed one-node run */
let reference: string

interface OverlayNode extends NsNode {
  host: LabHost
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

/** Starts host i's node the way its env file says (join $ZP_BOOTSTRAP --listen --announce --name), with the generated mesh key. */
async function startFromEnv (overlay: string, index: number): Promise<OverlayNode> {
  const host = fx.lab.host(index)
  const name = HOSTS[index - 1]!
  const env = readEnvFile(join(overlay, name, 'zp-node.env'))
  const bootstrap = env.ZP_BOOTSTRAP!.split(' ')
  expect(bootstrap).toHaveLength(1)
  const n = await fx.start({
    name: env.ZP_NAME!,
    dataDir: join(fx.scratch, name),
    join: bootstrap[0],
    listen: env.ZP_LISTEN,
    wrap: host.wrap,
    // the env file names where the key goes on a real host (/etc/zp-node/mesh.key); here it stays in the overlay folder
    args: ['--announce', env.ZP_ANNOUNCE!, '--psk', join(overlay, 'mesh.key'), ...FAST_FLAGS, '--slots', '2']
  })
  return { ...n, host, env }
}

beforeAll(async () => {
  if (fx.skipReason == null) reference = await referenceResults(await squaresCampaign(fx.scratch, 'reference', SHARDS, {}))
})

describe('WireGuard overlay from zp-node wireguard init, three namespaces', () => {
  it('a campaign across the overlay equals a local run; a host cut off is DEAD, its shards run elsewhere, and it is ALIVE after the heal', { timeout: 420_000 }, async ({ skip }) => {
    if (fx.skipReason != null) skip()
    const overlay = join(fx.scratch, 'overlay')
    const inventory = join(fx.scratch, 'hosts.yaml')
    await writeFile(inventory, [
      'cidr: 10.201.0.0/24',
      'hosts:',
      ...HOSTS.map((name, i) => `  - { name: ${name}, endpoint: "10.200.0.${i + 1}:51820"${i === 0 ? ', role: bootstrap' : ''} }`)
    ].join('\n') + '\n')
    const init = await runCli('zp-node', ['wireguard', 'init', '--inventory', inventory, '--out', overlay])
    expect(init.code, init.stderr).toBe(0)
    for (const h of fx.lab.hosts) await fx.lab.wireguardUp(h.index, join(overlay, HOSTS[h.index - 1]!, 'zp0.conf'), `${PREFIX}w${h.index}`, fx.scratch)

    const first = await startFromEnv(overlay, 1)
    // the bootstrap host joins through the list every host gets, its own address in it: alone, it is healthy
    const health = await waitFor(async () => {
      const r = await runCli('zp-node', ['health', '--data-dir', first.node.dataDir], { wrap: first.wrap })
      return r.code === 0 ? r : undefined
    }, { timeoutMs: 30_000, intervalMs: 500, what: 'the bootstrap host to report healthy on its own' })
    expect(health.stdout).toMatch(/first node/)
    const all = [first, await startFromEnv(overlay, 2), await startFromEnv(overlay, 3)]
    const byName = (name: string): OverlayNode => all.find(n => n.node.name === name)!
    for (const n of all) {
      await waitFor(async () => {
        const ps = await peersIn(n)
        return HOSTS.every(x => ps.find(p => p.name === x)?.state === 'alive') && ps.every(p => p.capabilities != null)
      }, { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to see the three hosts alive` })
    }

    // each is known by its overlay address and by nothing else: it listens and announces only there
    const seen = await peersIn(first)
    for (const [i, name] of HOSTS.entries()) {
      const p = seen.find(x => x.name === name)!
      expect(p.multiaddrs.map(a => a.replace(/\/p2p\/.*$/, ''))).toEqual([`/ip4/10.201.0.${i + 1}/tcp/4170`])
    }
    const table = await zpIn(first, ['peers'])
    for (const i of [1, 2, 3]) expect(table).toContain(`10.201.0.${i}:4170`)
    // and the traffic went through WireGuard: every host has a handshake with both others
    for (const h of fx.lab.hosts) {
      const shakes = [...fx.lab.handshakes(h.index, `${PREFIX}w${h.index}`).values()]
      expect(shakes.length).toBe(2)
      expect(shakes.every(t => t > 0), `handshakes of host ${h.index}: ${shakes.join(', ')}`).toBe(true)
    }

    // about one second a shard: lab3 holds leases when it is cut off
    const id = (await zpIn(first, ['submit', await squaresCampaign(fx.scratch, 'overlay', SHARDS, { slowMs: 100 })])).trim()
    const victim = byName('lab3')
    await waitFor(async () => {
      const s = await statusIn(first, id)
      const audit = await auditOf(s.runDir)
      return s.shards.done >= 6 && audit.some(r => r.type === 'leased' && r.worker === victim.peerId) ? s : undefined
    }, { timeoutMs: 60_000, intervalMs: 200, what: 'six shards done and lab3 holding leases' })
    fx.lab.cut(3)

    for (const n of [first, byName('lab2')]) {
      await waitFor(async () => (await peersIn(n)).find(p => p.name === 'lab3')?.state === 'dead', { timeoutMs: 60_000, intervalMs: 500, what: `${n.node.name} to mark lab3 DEAD` })
    }
    const done = await waitFor(async () => {
      const s = await statusIn(first, id)
      return FINAL.includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, intervalMs: 500, what: 'the campaign to end without lab3' })
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 }, coordinator: first.peerId })
    expect(await zpIn(first, ['results', id, '--format', 'jsonl'])).toBe(reference)

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

    fx.lab.heal(3)
    for (const n of [first, byName('lab2')]) {
      await waitFor(async () => (await peersIn(n)).find(p => p.name === 'lab3')?.state === 'alive', { timeoutMs: 120_000, intervalMs: 500, what: `${n.node.name} to see lab3 ALIVE after the heal` })
    }
    await waitFor(async () => {
      const ps = await peersIn(victim)
      return ['lab1', 'lab2'].every(x => ps.find(p => p.name === x)?.state === 'alive')
    }, { timeoutMs: 120_000, intervalMs: 500, what: 'lab3 to see the others ALIVE after the heal' })
    // whatever lab3 delivered late was not counted again
    const after = auditedResults(await auditOf(done.runDir))
    expect(after.length).toBe(60)
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', first.node.dataDir], { wrap: first.host.wrap })).code).toBe(0)
  })
})
