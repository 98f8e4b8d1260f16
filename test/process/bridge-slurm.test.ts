import { copyFile, readdir, readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { SlurmClient } from '../../bootstrap/slurm/commands.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import type { Allocation } from '../../protocols/bridge/schema.ts'
import { startSlurm, type SlurmCluster } from '../clusters/slurm.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { bridgeCli } from './bridge-cli.ts'
import { createProcessMesh, logLines, runCli, type ProcessMesh } from './harness.ts'

/*
 * The Slurm bridge against the project's real single-node Slurm 22.05
 * (slurmctld, slurmd, slurmdbd): attached allocations whose array tasks
 * become mesh nodes (zp bridge slurm up, a campaign's burst), and detached
 * campaigns whose shards run as array tasks that never join the mesh
 * (zp submit --on slurm). The coordinator is a real zp-node process; Slurm
 * starts the bridged zp-node processes.
 */
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

let cluster: SlurmCluster | undefined
let skipReason = ''
let scratch: { path: string, remove: () => Promise<void> }
let mesh: ProcessMesh
let coord: LocalNode
let slurm: SlurmClient
/** the squares campaign's export, run on the coordinator alone: what every bridged run must reproduce byte for byte */
let reference: string

const SHARDS = 60

async function results (id: string): Promise<string> {
  const r = await zp(['results', id])
  expect(r.code, r.stderr).toBe(0)
  return r.stdout
}

const { campaignFile, zp, allocations, bridgedPeers } = bridgeCli({ dir: () => scratch.path, mesh: () => mesh, coord: () => coord, shards: SHARDS, env: () => cluster?.env, campaign: { retry: { maxAttempts: 3, initialDelay: 100 } } })

beforeAll(async () => {
  scratch = await tempDir('zp-bridge-slurm-')
  const started = await startSlurm()
  if ('skip' in started) {
    skipReason = started.skip
    console.warn(skipReason)
    return
  }
  cluster = started
  slurm = new SlurmClient({ env: cluster.env })
  await copyFile(SQUARES, join(scratch.path, 'squares.mjs'))
  mesh = await createProcessMesh()
  // the coordinator runs sbatch: it needs the cluster's SLURM_CONF; bridged nodes' scratch goes under the test's dir
  coord = await mesh.start('coord', { args: ['--slots', '4'], env: { ...cluster.env, SLURM_TMPDIR: scratch.path } })
  const local = await zp(['submit', await campaignFile('squares-local', {}), '--wait', '--json'], 180_000)
  expect(local.code, local.stderr).toBe(0)
  reference = await results((JSON.parse(local.stdout) as CampaignStatus).id)
  expect(reference.trim().split('\n')).toHaveLength(SHARDS * 3)
})

afterAll(async () => {
  // every allocation a test made is released; the cluster itself is stopped by the run's teardown
  if (coord != null) {
    for (const a of await allocations().catch(() => [])) if (a.state !== 'ENDED') await zp(['bridge', 'down', a.id]).catch(() => {})
  }
  await mesh?.stop()
  await scratch?.remove()
})

describe('Slurm bridge, attached: array tasks become mesh nodes', () => {
  it('zp bridge slurm up: two nodes join labelled bridge=slurm and slurm.job; list shows them; down releases them and nothing is left', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const up = await zp(['bridge', 'slurm', 'up', '--nodes', '2', '--idle', '0'])
    expect(up.code, up.stderr).toBe(0)
    const id = up.stdout.split('\t')[0]!
    expect(id).toMatch(/^slurm-\d+$/)
    const job = id.slice('slurm-'.length)
    const peers = await waitFor(async () => {
      const p = (await bridgedPeers(id)).filter(x => x.state === 'alive')
      return p.length === 2 ? p : undefined
    }, { timeoutMs: 90_000, what: 'two bridged nodes alive in the mesh' })
    const labels = (await mesh.peers(coord)).filter(p => peers.some(x => x.peerId === p.peerId)).map(p => p.capabilities?.labels)
    expect(labels).toEqual([{ bridge: 'slurm', 'slurm.job': job, 'zp.bridge': id }, { bridge: 'slurm', 'slurm.job': job, 'zp.bridge': id }])
    expect(peers.map(p => p.name).sort()).toEqual([`zp-node-${job}-0`, `zp-node-${job}-1`])
    const listed = await waitFor(async () => (await allocations()).find(a => a.id === id && a.state === 'RUNNING' && a.running === 2), { timeoutMs: 30_000, what: 'the allocation RUNNING 2/2' })
    expect(listed).toMatchObject({ engine: 'slurm', engineId: job, requested: 2 })
    expect(listed.peers.sort()).toEqual(peers.map(p => p.peerId).sort())
    const table = await zp(['bridge', 'list'])
    expect(table.stdout).toContain(id)
    expect(table.stdout).toContain('RUNNING')

    // the coordinator's node restarts: the allocation is in its LevelDB, and it can still release it
    await coord.stop()
    coord = await mesh.start('coord', { dataDir: coord.dataDir, args: ['--slots', '4'], env: { ...cluster!.env, SLURM_TMPDIR: scratch.path } })
    expect((await allocations()).find(a => a.id === id)).toMatchObject({ state: 'RUNNING', engineId: job })

    const down = await zp(['bridge', 'down', id])
    expect(down.code, down.stderr).toBe(0)
    expect(await slurm.squeue([job], AbortSignal.timeout(10_000))).toEqual([])
    // the nodes drained and left (a clean stop, not a death), and their scratch dirs are gone
    await waitFor(async () => (await bridgedPeers(id)).every(p => p.state === 'dead'), { timeoutMs: 30_000, what: 'the bridged nodes gone from the mesh' })
    expect((await readdir(scratch.path)).filter(f => f.startsWith(`zp-${job}_`))).toEqual([])
    expect((await allocations()).find(a => a.id === id)).toMatchObject({ state: 'ENDED' })
  })

  it('a campaign that requires bridge=slurm brings its burst up, runs only there, survives scancel of one task, and releases the allocation at its end', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const file = await campaignFile('squares-burst', { requires: { labels: { bridge: 'slurm' } }, params: { slowMs: 60 } })
    const submit = await zp(['submit', file, '--burst', 'slurm:2', '--json'])
    expect(submit.code, submit.stderr).toBe(0)
    const id = (JSON.parse(submit.stdout) as CampaignStatus).id
    const alloc = await waitFor(async () => (await allocations()).find(a => a.campaignId === id), { timeoutMs: 30_000, what: 'the burst allocation' })
    const job = alloc.engineId
    // mid-campaign, Slurm cancels one of the two array tasks: its node drains (handing its shards back) and leaves
    await waitFor(async () => {
      const s = JSON.parse((await zp(['status', id, '--json'])).stdout) as CampaignStatus
      return s.shards.done >= 10 ? s : undefined
    }, { timeoutMs: 120_000, what: 'ten shards done on the bridged nodes' })
    await slurm.scancel([`${job}_1`], AbortSignal.timeout(10_000))
    const final = await waitFor(async () => {
      const s = JSON.parse((await zp(['status', id, '--json'])).stdout) as CampaignStatus
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    // only bridged nodes ran it; the coordinator (4 free slots, no label) did not
    const names = final.workers.map(w => w.name)
    expect(names.length).toBeGreaterThan(0)
    expect(names.every(n => n.startsWith(`zp-node-${job}-`))).toBe(true)
    expect(names).toContain(`zp-node-${job}-0`)
    expect(await results(id)).toBe(reference)
    // released with its campaign: nothing of the job is queued or running, and the registry says so
    await waitFor(async () => (await slurm.squeue([job], AbortSignal.timeout(10_000))).length === 0, { timeoutMs: 60_000, what: `job ${job} gone from squeue` })
    await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'ENDED'), { timeoutMs: 30_000, what: 'the burst allocation ENDED' })
    const acct = await waitFor(async () => {
      const rows = await slurm.sacct([job], AbortSignal.timeout(10_000))
      return rows.find(r => r.taskId === 1 && r.state === 'CANCELLED')
    }, { timeoutMs: 30_000, what: 'sacct to show task 1 cancelled' })
    expect(acct.state).toBe('CANCELLED')
  })

  it('a bridged node with nothing to do leaves on its own (--idle) and its task ends', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const up = await zp(['bridge', 'slurm', 'up', '--nodes', '1', '--idle', '2s', '--json'])
    expect(up.code, up.stderr).toBe(0)
    const alloc = JSON.parse(up.stdout) as Allocation
    await waitFor(async () => (await bridgedPeers(alloc.id)).length === 1, { timeoutMs: 90_000, what: 'the node to join' })
    await waitFor(async () => (await slurm.squeue([alloc.engineId], AbortSignal.timeout(10_000))).length === 0, { timeoutMs: 90_000, what: 'the idle node\'s task to end' })
    const ended = await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'ENDED'), { timeoutMs: 60_000, what: 'the allocation ENDED' })
    expect(ended.running).toBe(0)
  })

  it('bad input: an unknown partition and an unknown allocation are clear errors, and nothing is submitted', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const before = await allocations()
    const bad = await zp(['bridge', 'slurm', 'up', '--nodes', '1', '--partition', 'nope'])
    expect(bad.code).not.toBe(0)
    expect(bad.stderr).toMatch(/partition.*nope/i)
    expect(bad.stderr).toContain('debug')
    expect(await allocations()).toHaveLength(before.length)
    const gone = await zp(['bridge', 'down', 'slurm-999999'])
    expect(gone.code).not.toBe(0)
    expect(gone.stderr).toContain('no bridge allocation slurm-999999')
    // a node on a machine without Slurm's commands says which one is missing and what to install
    const bare = await mesh.start('no-slurm', { via: coord, env: { PATH: '/nonexistent' } })
    const none = await runCli('zp', ['bridge', 'slurm', 'up', '--nodes', '1', '--data-dir', bare.dataDir])
    expect(none.code).not.toBe(0)
    expect(none.stderr).toMatch(/sbatch.* not found on PATH.*apt-get install slurm-client/)
    const detached = await runCli('zp', ['submit', await campaignFile('squares-no-slurm', {}), '--on', 'slurm', '--shared-dir', join(scratch.path, 'shared'), '--data-dir', bare.dataDir])
    expect(detached.code).toBe(2)
    expect(detached.stderr).toMatch(/sbatch.* not found on PATH/)
  })
})

describe('Slurm bridge, detached: zp submit --on slurm', () => {
  it('runs every shard as an array task, resubmits the one that failed, and the results are byte-identical', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const shared = join(scratch.path, 'shared')
    const marker = join(scratch.path, 'shard-7-failed-once')
    const file = await campaignFile('squares-detached', { replicas: 0, params: { failOnceShard: 7, failOnceMarker: marker } })
    const r = await zp(['submit', file, '--on', 'slurm', '--shared-dir', shared, '--array-limit', '4', '--wait', '--json'], 240_000)
    expect(r.code, r.stderr).toBe(0)
    const status = JSON.parse(r.stdout) as CampaignStatus
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    expect(status.workers.map(w => w.name)).toEqual(['slurm-array'])
    expect(existsSync(marker)).toBe(true)
    expect(await results(status.id)).toBe(reference)
    // shard 7 failed once (run-shard's error and Slurm's cause in the coordinator's log) and its second array task succeeded
    const failed = (await logLines(coord)).filter(l => l.msg === 'Slurm task failed' && l.campaign === status.id)
    expect(failed.map(l => [l.shard, l.attempt])).toEqual([[7, 1]])
    expect(String(failed[0]!.err)).toContain('shard 7 fails on its first attempt')
    const verify = await zp(['audit', 'verify', status.id])
    expect(verify.code, verify.stderr).toBe(0)
    // nothing of the campaign stays on the shared file system or in Slurm's queue
    await waitFor(async () => !existsSync(join(shared, status.id)), { timeoutMs: 30_000, what: 'the campaign\'s shared dir removed' })
  })

  it('zp cancel scancels the campaign\'s array tasks', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const file = await campaignFile('squares-detached-cancel', { replicas: 0, params: { slowMs: 2000 } })
    const r = await zp(['submit', file, '--on', 'slurm', '--shared-dir', join(scratch.path, 'shared'), '--array-limit', '2', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const id = (JSON.parse(r.stdout) as CampaignStatus).id
    const jobsFile = join(scratch.path, 'shared', id, 'jobs.jsonl')
    const jobs = await waitFor(async () => {
      const text = await readFile(jobsFile, 'utf8').catch(() => '')
      const ids = text.trim().split('\n').filter(l => l !== '').map(l => (JSON.parse(l) as { job: string }).job)
      if (ids.length === 0) return undefined
      const running = (await slurm.squeue(ids, AbortSignal.timeout(10_000))).filter(q => q.state === 'RUNNING')
      return running.length > 0 ? ids : undefined
    }, { timeoutMs: 60_000, what: 'array tasks running' })
    const cancel = await zp(['cancel', id, '--json'])
    expect(cancel.code, cancel.stderr).toBe(0)
    expect(JSON.parse(cancel.stdout)).toMatchObject({ state: 'CANCELLED' })
    await waitFor(async () => (await slurm.squeue(jobs, AbortSignal.timeout(10_000))).length === 0, { timeoutMs: 60_000, what: 'the arrays gone from squeue' })
  })

  it('a shared dir that cannot be written is refused at submit, naming the fix; nothing runs', async ({ skip }) => {
    if (cluster == null) skip(skipReason)
    const file = await campaignFile('squares-unwritable', { replicas: 0 })
    const r = await zp(['submit', file, '--on', 'slurm', '--shared-dir', '/proc/zp-not-writable'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('/proc/zp-not-writable is not writable')
    expect(r.stderr).toContain('--shared-dir')
  })
})
