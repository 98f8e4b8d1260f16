import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, runCli, type ProcessMesh } from './harness.ts'

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }

beforeAll(async () => {
  scratch = await tempDir('zp-proc-idle-')
  mesh = await createProcessMesh()
})
afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
})

describe('zp-node join --exit-when-idle', () => {
  it('a bridged-style node works its leases, then drains, leaves the mesh cleanly and exits 0 once idle', async () => {
    const a = await mesh.start('a', { args: ['--slots', '1'] })
    // queued before the labelled node exists: the campaign is what brings it work
    const file = join(scratch.path, 'burst.json')
    await writeFile(file, JSON.stringify({
      name: 'burst',
      workload: { kind: 'module', module: SQUARES },
      // 4 shards of 1.25 s on one slot: longer than the idle limit, so a node that ignored its work would leave mid-campaign
      shards: { iterations: { total: 20, perShard: 5, seed: 3 } },
      params: { slowMs: 250 },
      // no replica on w: its shards alone must keep it (replicas as a duty: test/mesh/idle.test.ts)
      replicas: 0,
      requires: { labels: { bridge: 'slurm' } }
    }))
    const submitted = await runCli('zp', ['submit', file, '--data-dir', a.dataDir])
    expect(submitted.code).toBe(0)
    expect(submitted.stderr).toMatch(/no peer can run .*label bridge=slurm \(has none\)/)
    const id = submitted.stdout.trim()

    const w = await mesh.start('w', { via: a, args: ['--slots', '1', '--label', 'bridge=slurm', '--label', 'slurm.job=7', '--exit-when-idle', '3s'] })
    let exitedAt: number | undefined
    void w.exited.then(() => { exitedAt = Date.now() })
    // what people see of the labels: zp-node status on the node, zp peers anywhere
    expect((await runCli('zp-node', ['status', '--data-dir', w.dataDir])).stdout).toMatch(/^labels +bridge=slurm, slurm\.job=7$/m)
    const table = await waitFor(async () => {
      const out = (await runCli('zp', ['peers', '--data-dir', a.dataDir])).stdout
      return out.includes('slurm.job=7') ? out : undefined
    }, { what: 'zp peers on a to show w\'s labels' })
    expect(table).toMatch(/│ LABELS +│/)
    expect(table).toMatch(/│ w +│.*│ bridge=slurm, slurm\.job=7 +│/)
    const api = await mesh.api(a)
    const final = await Promise.race([
      waitFor(async () => {
        const s = await api.get<CampaignStatus>(`/v1/campaigns/${id}`)
        return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
      }, { timeoutMs: 90_000, what: 'the campaign to end' }),
      // the only node that can run it must not leave while it has work
      w.exited.then(async () => { throw new Error(`w exited before the campaign ended:\n${await w.output()}`) })
    ])
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { done: 4, failed: 0 } })
    expect(final.workers.map(x => x.name)).toEqual(['w'])
    // it stayed while it had work
    expect(exitedAt).toBeUndefined()

    let timer: ReturnType<typeof setTimeout> | undefined
    const exit = await Promise.race([w.exited, new Promise<undefined>(resolve => { timer = setTimeout(() => { resolve(undefined) }, 45_000) })])
    clearTimeout(timer)
    expect(exit, `w did not exit within 45 s of the campaign's end:\n${await w.output()}`).toEqual({ code: 0, signal: null })

    const own = await logLines(w)
    expect(own.filter(l => l.msg === 'idle for 3s: draining and exiting')).toEqual([expect.objectContaining({ exitWhenIdleMs: 3000 })])
    // the mesh saw it drain, then leave: not silence, not a death that reschedules shards
    const seen = await waitFor(async () => {
      const peers = await mesh.peers(a)
      const view = peers.find(p => p.name === 'w')
      return view?.state === 'dead' ? view : undefined
    }, { what: 'a to see w gone' })
    expect(seen.reason).toBe('left the mesh (clean stop)')
    expect(seen.labels).toEqual({ bridge: 'slurm', 'slurm.job': '7' })
    const aLog = await logLines(a)
    expect(aLog.filter(l => l.peerName === 'w').map(l => l.to)).toEqual(expect.arrayContaining(['alive', 'draining', 'dead']))
    expect(aLog.filter(l => typeof l.msg === 'string' && l.msg.startsWith('worker died'))).toEqual([])
  })
})
