import { copyFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import type { Allocation } from '../../protocols/bridge/schema.ts'
import { startDask, type DaskCluster } from '../clusters/dask.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { bridgeCli, processesWith } from './bridge-cli.ts'
import { createProcessMesh, type ProcessMesh } from './harness.ts'

/*
 * The Dask bridge against a real Dask 2022.12 cluster (a scheduler and two
 * workers with nannies): a WorkerPlugin starts a zp-node on each worker;
 * a campaign runs on them; a worker SIGKILLed mid-campaign takes its node
 * with it, the nanny restarts the worker and the node comes back; the
 * results are those of a run on the coordinator alone; `bridge down` leaves
 * no process behind.
 */
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = 60

let dask: DaskCluster | undefined
let skipReason = ''
let scratch: { path: string, remove: () => Promise<void> }
let mesh: ProcessMesh
let coord: LocalNode

const { campaignFile, zp, status } = bridgeCli({ dir: () => scratch.path, mesh: () => mesh, coord: () => coord, shards: SHARDS })
/** pids of live processes whose environment carries the bridge's marker (what the plugin started, and their children) */
const bridgeProcesses = async (id: string): Promise<number[]> => await processesWith({ env: `ZP_DASK_BRIDGE=${id}` })

beforeAll(async () => {
  scratch = await tempDir('zp-bridge-dask-')
  const started = await startDask({ workers: 2 })
  if ('skip' in started) {
    skipReason = started.skip
    console.warn(skipReason)
    return
  }
  dask = started
  await copyFile(SQUARES, join(scratch.path, 'squares.mjs'))
  mesh = await createProcessMesh()
  coord = await mesh.start('coord', { args: ['--slots', '4'] })
})

afterAll(async () => {
  await mesh?.stop()
  await dask?.stop()
  await scratch?.remove()
})

describe('Dask bridge', () => {
  it('two Dask workers become two mesh nodes; a campaign runs on them through a SIGKILLed worker; bridge down leaves nothing', async ({ skip }) => {
    if (dask == null) return skip(skipReason)
    const cluster = dask
    const local = await zp(['submit', await campaignFile('squares-local', { replicas: 0 }), '--wait', '--json'], 180_000)
    expect(local.code, local.stderr).toBe(0)
    const reference = (await zp(['results', (JSON.parse(local.stdout) as CampaignStatus).id])).stdout

    const up = await zp(['bridge', 'dask', 'up', '--scheduler', dask.address, '--python', dask.python, '--per-worker', '2', '--json'])
    expect(up.code, up.stderr).toBe(0)
    const alloc = JSON.parse(up.stdout) as Allocation
    expect(alloc).toMatchObject({ engine: 'dask', requested: 2 })
    const bridged = async (): Promise<Array<{ name: string, peerId: string, state: string }>> => (await mesh.peers(coord)).filter(p => p.capabilities?.labels?.['zp.bridge'] === alloc.id)
    const first = await waitFor(async () => {
      const p = (await bridged()).filter(x => x.state === 'alive')
      return p.length === 2 ? p : undefined
    }, { timeoutMs: 90_000, what: 'a mesh node on each Dask worker' })
    expect(first.map(p => p.name).sort()).toEqual(['dask-zpw-0', 'dask-zpw-1'])
    const listed = await waitFor(async () => (JSON.parse((await zp(['bridge', 'list', '--json'])).stdout) as Allocation[]).find(a => a.id === alloc.id && a.state === 'RUNNING' && a.running === 2))
    expect(listed.peers.sort()).toEqual(first.map(p => p.peerId).sort())

    const submit = await zp(['submit', await campaignFile('squares-dask', { requires: { labels: { bridge: 'dask' } }, params: { slowMs: 60 } }), '--json'])
    expect(submit.code, submit.stderr).toBe(0)
    const id = (JSON.parse(submit.stdout) as CampaignStatus).id
    await waitFor(async () => (await status(id)).shards.done >= 10, { timeoutMs: 120_000, what: 'ten shards done on the Dask nodes' })
    // SIGKILL the process running worker zpw-0's tasks: its node dies with it (PDEATHSIG), the nanny starts a new worker, the plugin a new node
    const victim = (await cluster.workerPids())['zpw-0']!
    const before = (await bridgeProcesses(alloc.id)).length
    expect(before).toBeGreaterThanOrEqual(2)
    process.kill(victim, 'SIGKILL')
    const final = await waitFor(async () => {
      const s = await status(id)
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    expect(final.workers.map(w => w.name).every(n => n.startsWith('dask-zpw-'))).toBe(true)
    expect((await zp(['results', id])).stdout).toBe(reference)
    // the restarted worker's node rejoined: same name (and data dir, so the same peer id), alive again
    const restartedPid = await waitFor(async () => {
      const pid = (await cluster.workerPids())['zpw-0']
      return pid != null && pid !== victim ? pid : undefined
    }, { timeoutMs: 60_000, what: 'the nanny to restart zpw-0' })
    expect(restartedPid).not.toBe(victim)
    await waitFor(async () => (await bridged()).filter(p => p.state === 'alive').length === 2, { timeoutMs: 90_000, what: 'both Dask nodes alive again' })

    const down = await zp(['bridge', 'down', alloc.id])
    expect(down.code, down.stderr).toBe(0)
    expect(await bridgeProcesses(alloc.id)).toEqual([])
    await waitFor(async () => (await bridged()).every(p => p.state === 'dead'), { timeoutMs: 30_000, what: 'the Dask nodes gone from the mesh' })
    expect((JSON.parse((await zp(['bridge', 'list', '--json'])).stdout) as Allocation[]).find(a => a.id === alloc.id)).toMatchObject({ state: 'ENDED' })
  })

  it('an unreachable scheduler is a clear error naming the address, and nothing is recorded', async ({ skip }) => {
    if (dask == null) return skip(skipReason)
    const r = await zp(['bridge', 'dask', 'up', '--scheduler', 'tcp://127.0.0.1:9', '--python', dask.python])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('tcp://127.0.0.1:9')
    const all = JSON.parse((await zp(['bridge', 'list', '--json'])).stdout) as Allocation[]
    expect(all.filter(a => a.options != null && 'scheduler' in a.options && a.options.scheduler === 'tcp://127.0.0.1:9')).toEqual([])
  })
})
