import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { waitFor } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

// zp-node health is what systemd, compose and Kubernetes probe: its exit code and its one line are the contract.

let mesh: ProcessMesh
beforeAll(async () => { mesh = await createProcessMesh() })
afterAll(async () => { await mesh?.stop() })

async function health (dataDir: string): Promise<{ code: number, line: string }> {
  const r = await runCli('zp-node', ['health', '--data-dir', dataDir])
  return { code: r.code, line: (r.stdout + r.stderr).trim() }
}

describe('zp-node health', () => {
  it('exits 1 naming the data dir when no node runs on it', async () => {
    const dir = join(mesh.root, 'nothing-here')
    const r = await health(dir)
    expect(r.code).toBe(1)
    expect(r.line).toContain(`no running node found in ${dir}`)
    expect(r.line.split('\n')).toHaveLength(1)
  })

  it('exits 0 for a first node alone, 1 while a node joins an unreachable bootstrap, 0 once joined, 1 when its peers are gone', async () => {
    const first = await mesh.start('first')
    expect(await health(first.dataDir)).toEqual({ code: 0, line: 'ok: first node of its mesh (no bootstrap to wait for), 0 live peers' })

    const nowhere = '/ip4/127.0.0.1/tcp/1'
    const lost = await mesh.start('lost', { via: nowhere })
    const joining = await health(lost.dataDir)
    expect(joining.code).toBe(1)
    expect(joining.line).toMatch(/^still joining the mesh: no bootstrap peer has answered yet; tried \/ip4\/127\.0\.0\.1\/tcp\/1 \(/)
    // the last dial error is named once a dial has failed
    await waitFor(async () => (await health(lost.dataDir)).line.includes('last error: none yet') ? undefined : true, { what: 'a failed dial to be reported' })
    expect((await health(lost.dataDir)).line).toMatch(/last error: (?!none yet).+check that the bootstrap node runs/)

    const worker = await mesh.start('worker', { via: first })
    const joined = await waitFor(async () => { const r = await health(worker.dataDir); return r.code === 0 ? r : undefined }, { what: 'the joined node to be healthy' })
    expect(joined.line).toBe('ok: in the mesh, 1 live peer')
    expect(await health(first.dataDir)).toEqual({ code: 0, line: 'ok: first node of its mesh (no bootstrap to wait for), 1 live peer' })

    // the bootstrap dies: the worker that joined through it has no live peer left
    await first.stop(10_000)
    const alone = await waitFor(async () => { const r = await health(worker.dataDir); return r.code === 1 ? r : undefined }, { what: 'the worker to see its only peer gone' })
    expect(alone.line).toMatch(/^no live peer: the node joined through \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\w+ but hears from no peer now/)
  })
})
