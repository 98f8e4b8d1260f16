import { describe, it, expect, afterEach } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createMeshLibp2p } from '../../node/libp2p.ts'
import { createServer } from 'node:net'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'
import { waitFor } from '../helpers.ts'

/** a loopback port nobody listens on now (for an address a node must know before it starts) */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

let mesh: Mesh | undefined
afterEach(async () => { await mesh?.stop(); mesh = undefined })

describe('membership over real libp2p (in-process)', () => {
  it('a node whose bootstrap address is its own (pod 0 of a StatefulSet) stops dialling itself and is healthy; others join through it', async () => {
    mesh = await createMesh()
    const port = await freePort()
    const shared = multiaddr(`/ip4/127.0.0.1/tcp/${port}`)
    const a = await mesh.start({ name: 'a', listen: [shared.toString()], bootstrap: [shared] })
    // without the fix it retries 'Can not dial self' forever and /v1/health says joining
    await waitFor(() => a.joining().length === 0, { what: 'a to give up dialling itself' })
    const b = await mesh.start({ name: 'b', bootstrap: [shared] })
    await waitFor(() => b.joining().length === 0, { what: 'b to join through a' })
    await waitForPeers(a, [b])
    await waitForPeers(b, [a])
  })

  it('a --listen address this machine does not have, or a port in use, is refused in one line naming the fix', async () => {
    mesh = await createMesh()
    // 192.0.2.0/24 is for documentation: no machine has it (as an overlay address whose interface is down)
    await expect(mesh.start({ name: 'a', listen: ['/ip4/192.0.2.1/tcp/0'] })).rejects.toThrow(/^cannot listen on \/ip4\/192\.0\.2\.1\/tcp\/0: 192\.0\.2\.1 is not an address of this machine; if it is a WireGuard overlay address, the interface is not up/)
    const port = await freePort()
    await mesh.start({ name: 'b', listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    const taken = mesh.start({ name: 'c', listen: [`/ip4/127.0.0.1/tcp/${port}`] })
    await expect(taken).rejects.toThrow(/the port is in use/)
    await expect(taken).rejects.not.toThrow(/\n/)
  })

  it('three nodes joined as a chain all see each other with capabilities', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    const c = await mesh.start({ name: 'c', bootstrap: [multiaddr(b.multiaddrs()[0]!)] })
    await waitForPeers(a, [b, c])
    await waitForPeers(b, [a, c])
    await waitForPeers(c, [a, b])
    // c only knew b, so reaching a took peer exchange
    expect(c.libp2p.getConnections().map(x => x.remotePeer.toString())).toContain(a.peerId)
    const fromC = await c.peers()
    const aSeenByC = fromC.find(p => p.peerId === a.peerId)!
    expect(aSeenByC.name).toBe('a')
    expect(aSeenByC.capabilities?.capabilities['onnx.ep.cpu']?.status).toBe('ok')
    expect(aSeenByC.multiaddrs.length).toBeGreaterThan(0)
    expect(fromC.filter(p => p.self).map(p => p.peerId)).toEqual([c.peerId])
  })

  it('a stopped node is DEAD on the others at once (it says goodbye)', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    await waitForPeers(a, [b])
    await b.stop()
    await waitForPeers(a, [b], 'dead', 10_000)
    const rec = (await a.peers()).find(p => p.peerId === b.peerId)!
    expect(rec.reason).toMatch(/left/)
  })

  it('trusts the peer it joined through, and no one else by default', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    const c = await mesh.start({ name: 'c', bootstrap: [multiaddr(a.multiaddrs()[0]!)], trustBootstrap: false })
    await waitForPeers(b, [a, c])
    expect(b.trust.isTrusted(a.peerId)).toBe(true)
    expect(b.trust.isTrusted(c.peerId)).toBe(false)
    expect(c.trust.isTrusted(a.peerId)).toBe(false)
    await expect(c.host.ask({ peer: b.peerId, name: 'system' }, { type: 'info' })).rejects.toMatchObject({ name: 'NotAuthorizedError' })
    // b joined through a, so a (say, a coordinator there) may use b's privileged actors
    const info = await a.host.ask<{ name: string }>({ peer: b.peerId, name: 'system' }, { type: 'info' })
    expect(info.name).toBe('b')
    await expect(b.host.ask({ peer: a.peerId, name: 'system' }, { type: 'info' })).rejects.toMatchObject({ name: 'NotAuthorizedError' })
  })
})

describe('membership at a larger size (in-process)', () => {
  it('eight nodes, each joined through a different earlier one, converge to a full view', async () => {
    mesh = await createMesh()
    const nodes = [await mesh.start({ name: 'm0' })]
    for (let i = 1; i < 8; i++) {
      const via = nodes[(i * 5) % nodes.length]!
      nodes.push(await mesh.start({ name: `m${i}`, bootstrap: [multiaddr(via.multiaddrs()[0]!)] }))
    }
    for (const n of nodes) await waitForPeers(n, nodes.filter(o => o !== n), 'alive', 60_000)
    await nodes[3]!.stop()
    for (const n of nodes.filter(o => o !== nodes[3])) await waitForPeers(n, [nodes[3]!], 'dead', 30_000)
  })
})

describe('version refusal', () => {
  it('asking a peer that does not speak /zp/actor/1.0.0 fails with UnsupportedVersionError', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const stranger = await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    await stranger.start()
    try {
      await a.libp2p.dial(stranger.getMultiaddrs()[0]!)
      await expect(a.host.ask({ peer: stranger.peerId.toString(), name: 'membership' }, { type: 'advert' }))
        .rejects.toMatchObject({ name: 'UnsupportedVersionError', message: expect.stringContaining('/zp/actor/1.0.0') })
    } finally {
      await stranger.stop()
    }
  })
})
