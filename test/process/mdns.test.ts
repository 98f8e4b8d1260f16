import { describe, expect, it } from 'vitest'
import { join } from 'node:path'
import type { PeerJson } from '../../node/api/routes.ts'
import type { LabHost } from '../clusters/netns.ts'
import { waitFor } from '../helpers.ts'
import { FAST_FLAGS, logLines, runCli } from './harness.ts'
import { labFixture, peersIn, type NsNode } from './netns-nodes.ts'

/*
 * LAN discovery: four machines (network namespaces) on one switch, every node started with --mdns and no
 * bootstrap address (`start --mdns`, `join --mdns`). Two hold one pre-shared key, two another: each pair finds its own mesh and never hears
 * of the other. Needs root and iproute2; the test says it is skipped otherwise.
 */

const FOUND = 'found a peer on the LAN (mDNS)'

const fx = labFixture({ prefix: `zm${process.pid % 100000}`, hosts: 4, what: 'the mDNS test', defaultRoute: true })

async function pskFile (name: string): Promise<string> {
  const file = join(fx.scratch, `${name}.key`)
  const r = await runCli('zp-node', ['psk', 'generate', file])
  if (r.code !== 0) throw new Error(`zp-node psk generate exited ${r.code}: ${r.stderr.trim()}`)
  return file
}

/** `zp-node start --mdns`, or `zp-node join --mdns` with no address */
async function startNode (name: string, host: LabHost, psk: string, command: 'start' | 'join' = 'start'): Promise<NsNode> {
  return await fx.start({
    name,
    join: command === 'join' ? true : undefined,
    dataDir: join(fx.scratch, name),
    listen: `/ip4/${host.underlay}/tcp/0`,
    wrap: host.wrap,
    args: [...FAST_FLAGS, '--mdns', '--psk', psk]
  })
}

async function seeAlive (n: NsNode, other: NsNode): Promise<PeerJson[]> {
  return await waitFor(async () => {
    const ps = await peersIn(n)
    return ps.find(p => p.peerId === other.peerId)?.state === 'alive' ? ps : undefined
  }, { timeoutMs: 90_000, intervalMs: 500, what: `${n.node.name} to see ${other.node.name} alive, found by mDNS` })
}

/** the peer IDs a node logged as found by mDNS */
async function foundByMdns (n: NsNode): Promise<string[]> {
  return (await logLines(n.node)).filter(l => l.msg === FOUND).map(l => String(l.peerId))
}

describe('LAN discovery (--mdns) across network namespaces on one switch', () => {
  it('nodes with the same pre-shared key find each other with no bootstrap address; a mesh with another key is never tried', { timeout: 300_000 }, async ({ skip }) => {
    if (fx.skipReason != null) skip()
    const [keyA, keyB] = [await pskFile('a'), await pskFile('b')]
    const [a1, a2] = [await startNode('a1', fx.lab.host(1), keyA), await startNode('a2', fx.lab.host(2), keyA, 'join')]
    const [b1, b2] = [await startNode('b1', fx.lab.host(3), keyB), await startNode('b2', fx.lab.host(4), keyB, 'join')]

    // each pair finds its own mesh: mDNS crossed the switch and the discovered peer was dialled
    for (const [n, other] of [[a1, a2], [a2, a1], [b1, b2], [b2, b1]] as const) await seeAlive(n, other)
    expect(await foundByMdns(a1)).toContain(a2.peerId)
    expect(await foundByMdns(b1)).toContain(b2.peerId)

    // both meshes have been querying the same LAN all along; a few heartbeats more, and still apart
    const since = Date.now()
    await waitFor(async () => (await peersIn(a1)).find(p => p.peerId === a2.peerId)!.lastSeenMs > since + 1000,
      { timeoutMs: 30_000, intervalMs: 500, what: 'a few more heartbeats between a1 and a2' })
    const meshA = [a1, a2]
    const meshB = [b1, b2]
    for (const [mine, others] of [[meshA, meshB], [meshB, meshA]] as const) {
      for (const n of mine) {
        const listed = (await peersIn(n)).map(p => p.peerId)
        const found = await foundByMdns(n)
        for (const o of others) {
          expect(listed, `${n.node.name} lists ${o.node.name} of the other mesh`).not.toContain(o.peerId)
          expect(found, `${n.node.name} found ${o.node.name} of the other mesh by mDNS`).not.toContain(o.peerId)
        }
      }
    }
    // nobody tried a connection the key would refuse
    for (const n of [...meshA, ...meshB]) {
      expect((await logLines(n.node)).filter(l => l.component === 'handshake' && (l.level as number) >= 40)).toEqual([])
    }
  })
})
