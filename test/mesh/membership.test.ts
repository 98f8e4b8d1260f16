import { describe, it, expect, afterEach } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { createMesh, waitForPeers, type Mesh } from './harness.ts'

let mesh: Mesh | undefined
afterEach(async () => { await mesh?.stop(); mesh = undefined })

describe('membership over real libp2p (in-process)', () => {
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
