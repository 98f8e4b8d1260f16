import { afterEach, describe, expect, it } from 'vitest'
import { CapabilityReportSchema } from '../../protocols/membership/capabilities.ts'
import { waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, runCli, waitForStates, type ProcessMesh } from './harness.ts'

let mesh: ProcessMesh | undefined
afterEach(async () => { await mesh?.stop(); mesh = undefined })

describe('zp-node processes', () => {
  it('three nodes joined as a chain all see all, and zp peers shows them', async () => {
    mesh = await createProcessMesh()
    const a = await mesh.start('alpha')
    const b = await mesh.start('beta', { via: a })
    const c = await mesh.start('gamma', { via: b }) // knows only beta: reaching alpha takes peer exchange
    for (const observer of [a, b, c]) await waitForStates(mesh, observer, ['alpha', 'beta', 'gamma'], 'alive')

    // capabilities are probed in the background; wait until gamma has everyone's
    const peers = await waitFor(async () => {
      const list = await mesh!.peers(c)
      return list.every(p => p.capabilities != null) ? list : undefined
    }, { timeoutMs: 60_000, what: 'capabilities of all three' })
    for (const p of peers) {
      expect(CapabilityReportSchema.safeParse(p.capabilities).success).toBe(true)
      expect(p.capabilities?.capabilities['cpu.x86'] ?? p.capabilities?.capabilities['cpu.arm']).toMatchObject({ status: 'ok' })
    }

    const json = await runCli('zp', ['peers', '--json', '--data-dir', c.dataDir])
    expect(json.code).toBe(0)
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>
    expect(listed.map(p => p.name).sort()).toEqual(['alpha', 'beta', 'gamma'])
    for (const p of listed) {
      expect(p).toEqual(expect.objectContaining({
        peerId: expect.any(String), state: 'alive', self: p.name === 'gamma', multiaddrs: expect.any(Array), lastSeenMs: expect.any(Number)
      }))
      expect(p).toHaveProperty('capabilities')
    }

    const table = await runCli('zp', ['peers'], { env: { ZP_DATA_DIR: a.dataDir } })
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/alpha.*ALIVE/)
    expect(table.stdout).toMatch(/gamma.*ALIVE/)
    expect(table.stdout).toContain('3 peers (3 alive)')
  })

  it('a node killed with SIGKILL is DEAD on every other node within seconds', async () => {
    mesh = await createProcessMesh()
    const a = await mesh.start('a')
    const b = await mesh.start('b', { via: a })
    const c = await mesh.start('c', { via: a })
    await waitForStates(mesh, a, ['b', 'c'], 'alive')
    await waitForStates(mesh, c, ['a', 'b'], 'alive')
    b.kill('SIGKILL')
    await b.exited
    const seenByA = await waitForStates(mesh, a, ['b'], 'dead', 30_000)
    await waitForStates(mesh, c, ['b'], 'dead', 30_000)
    expect(seenByA.find(p => p.name === 'b')?.reason).not.toMatch(/left/)
    expect(seenByA.find(p => p.name === 'c')?.state).toBe('alive')
  })

  it('a node that goes silent with its connections open is found by missed heartbeats, and recovers', async () => {
    mesh = await createProcessMesh()
    const a = await mesh.start('a')
    const b = await mesh.start('b', { via: a })
    await waitForStates(mesh, a, ['b'], 'alive')
    b.kill('SIGSTOP') // sockets stay open: only the heartbeats stop
    try {
      await waitForStates(mesh, a, ['b'], 'suspect', 30_000)
      const dead = await waitForStates(mesh, a, ['b'], 'dead', 30_000)
      expect(dead.find(p => p.name === 'b')?.reason).toMatch(/no heartbeat/)
    } finally {
      b.kill('SIGCONT')
    }
    await waitForStates(mesh, a, ['b'], 'alive', 30_000)
  })

  it('SIGTERM drains: peers see DRAINING, then the node leaves and exits 0', async () => {
    mesh = await createProcessMesh()
    const a = await mesh.start('a')
    const b = await mesh.start('b', { via: a })
    await waitForStates(mesh, a, ['b'], 'alive')
    const { code } = await b.stop()
    expect(code).toBe(0)
    const seen = await waitForStates(mesh, a, ['b'], 'dead', 30_000)
    expect(seen.find(p => p.name === 'b')?.reason).toMatch(/left/)
    const transitions = (await logLines(a)).filter(l => l.peerName === 'b' && l.to != null).map(l => l.to)
    expect(transitions).toEqual(expect.arrayContaining(['draining', 'dead']))
    expect(transitions.indexOf('draining')).toBeLessThan(transitions.lastIndexOf('dead'))
    // a clean stop removes node.json, so scripts and the CLI do not find a stale node
    const after = await runCli('zp', ['peers', '--data-dir', b.dataDir])
    expect(after.code).toBe(1)
    expect(after.stderr).toMatch(/no running node found/)
  })

  it('a restarted node (same data dir, no bootstrap) rejoins the peers it knew', async () => {
    mesh = await createProcessMesh()
    const a = await mesh.start('a')
    const b = await mesh.start('b', { via: a })
    // b remembers a once it has seen it alive (kept in its LevelDB)
    await waitForStates(mesh, b, ['a'], 'alive')
    b.kill('SIGKILL')
    await b.exited
    await waitForStates(mesh, a, ['b'], 'dead', 30_000)
    const again = await mesh.start('b', { dataDir: b.dataDir })
    expect(again.info?.peerId).toBe(b.info?.peerId)
    await waitForStates(mesh, a, ['b'], 'alive', 30_000)
  })
})
