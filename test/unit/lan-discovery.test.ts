import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerDiscovery, PeerInfo } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { pino } from 'pino'
import type { MembershipMessage } from '../../actors/membership/membership.ts'
import { mdnsServiceTag, wireLanDiscovery } from '../../node/mesh-wiring.ts'
import { generatePskFile, loadPsk } from '../../node/psk.ts'
import { tempDir } from '../helpers.ts'
import { parseZpNode } from './zp-node-argv.ts'

describe('mdnsServiceTag', () => {
  it('is one per pre-shared key, a DNS service name of a single short label, and the plain mesh one without a key', async () => {
    const dir = await tempDir('zp-mdns-tag-')
    try {
      const a = await generatePskFile(`${dir.path}/a.key`)
      const b = await generatePskFile(`${dir.path}/b.key`)
      const tagA = mdnsServiceTag(a.fingerprint)
      expect(tagA).toMatch(/^_zp-[0-9a-f]{12}\._udp\.local$/)
      // every node holding the key derives the same tag from the file
      expect(mdnsServiceTag((await loadPsk(`${dir.path}/a.key`)).fingerprint)).toBe(tagA)
      expect(mdnsServiceTag(b.fingerprint)).not.toBe(tagA)
      expect(mdnsServiceTag(undefined)).toBe('_zp-mesh._udp.local')
      expect(mdnsServiceTag(undefined)).not.toBe(tagA)
    } finally {
      await dir.remove()
    }
  })
})

describe('zp-node --mdns on the command line', () => {
  it('join takes no bootstrap address with --mdns, and still takes addresses', async () => {
    expect(await parseZpNode(['join', '--mdns'])).toMatchObject({ command: ['join'], args: [], opts: { mdns: true } })
    expect(await parseZpNode(['join', '--mdns', '10.0.0.5:4170'])).toMatchObject({ args: ['10.0.0.5:4170'], opts: { mdns: true } })
    expect(await parseZpNode(['join', '10.0.0.5:4170'])).toMatchObject({ args: ['10.0.0.5:4170'] })
    expect(await parseZpNode(['start', '--mdns'])).toMatchObject({ command: ['start'], opts: { mdns: true } })
  })

  it('join with neither an address nor --mdns is refused, naming both ways out', async () => {
    const err = await parseZpNode(['join', '--psk', 'mesh.key']).then(() => undefined, (e: unknown) => e as Error)
    expect(err?.name).toBe('UsageError')
    expect(err?.message).toMatch(/address of a node already in the mesh/)
    expect(err?.message).toMatch(/--mdns/)
  })
})

describe('wireLanDiscovery', () => {
  async function peer (): Promise<PeerInfo> {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    return { id, multiaddrs: [multiaddr('/ip4/10.200.0.2/tcp/40123')] }
  }

  it('hands every peer mDNS reports to membership as a seed, and logs each peer once', async () => {
    const discovery = new EventTarget() as unknown as PeerDiscovery
    const told: MembershipMessage[] = []
    const lines: Array<Record<string, unknown>> = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    wireLanDiscovery({ discovery, tellMembership: (msg) => { told.push(msg) }, log })

    const [a, b] = [await peer(), await peer()]
    // mDNS answers each query: the same peer comes back every interval
    for (const p of [a, b, a]) discovery.dispatchEvent(new CustomEvent('peer', { detail: p }))

    expect(told).toEqual([a, b, a].map(p => ({ type: 'seed', peers: [{ peerId: p.id.toString(), multiaddrs: ['/ip4/10.200.0.2/tcp/40123'] }] })))
    const found = lines.filter(l => l.msg === 'found a peer on the LAN (mDNS)')
    expect(found.map(l => l.peerId)).toEqual([a.id.toString(), b.id.toString()])
    expect(found[0]).toMatchObject({ multiaddrs: ['/ip4/10.200.0.2/tcp/40123'], via: 'mdns' })
  })
})
