import { copyFile, mkdir, readdir } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import { rayEngine } from '../../bootstrap/ray/bridge.ts'
import { RayJobsClient } from '../../bootstrap/ray/client.ts'
import type { Allocation, RayUp } from '../../protocols/bridge/schema.ts'
import { fakeRaySkip, startFakeRay, type FakeRay } from '../clusters/fake-ray/index.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { bridgeCli, processesWith } from './bridge-cli.ts'
import { createProcessMesh, type ProcessMesh } from './harness.ts'

/*
 * The Ray bridge against the test suite's fake Ray head (the Jobs REST API
 * as Ray documents it; entrypoints run as `sh -c` process groups, tasks in
 * worker processes of their own, with the resources they ask for): the
 * launcher's tasks start real zp-node processes that join the coordinator's
 * mesh; a campaign runs on them; `bridge down` stops the job and nothing of
 * it is left. The launcher's stop and worker-death handling are checked
 * first with a stand-in for the node.
 */
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = 60

let skipReason: string | undefined
let fake: FakeRay
let ray: RayJobsClient
let scratch: { path: string, remove: () => Promise<void> }
/** TMPDIR of the fake's processes: where the launcher's scratch dirs go */
let rayTmp: string
let mesh: ProcessMesh | undefined
let coord: LocalNode
/** the squares campaign's export, run on the coordinator alone: what every bridged run must reproduce byte for byte */
let reference: string

/** every allocation this file made: a failing test must not leave its processes behind */
const made = new Set<string>()

async function scratchDirs (id: string): Promise<string[]> {
  return (await readdir(rayTmp)).filter(f => f.startsWith(`zp-ray-${id}-`))
}

const { campaignFile, zp, status, allocations, bridgedPeers } = bridgeCli({ dir: () => scratch.path, mesh: () => mesh!, coord: () => coord, shards: SHARDS })
/** pids of live processes whose environment carries the allocation's marker: the driver, its task workers, their nodes */
const bridgeProcesses = async (id: string): Promise<number[]> => await processesWith({ env: `ZP_RAY_BRIDGE=${id}` })

beforeAll(async () => {
  skipReason = await fakeRaySkip()
  if (skipReason != null) {
    console.warn(skipReason)
    return
  }
  scratch = await tempDir('zp-bridge-ray-')
  rayTmp = join(scratch.path, 'ray-tmp')
  await mkdir(rayTmp)
  fake = await startFakeRay({ cpus: 4, tmpDir: rayTmp })
  ray = new RayJobsClient({ address: fake.address })
  await copyFile(SQUARES, join(scratch.path, 'squares.mjs'))
})

afterAll(async () => {
  if (mesh != null) {
    for (const a of await allocations().catch(() => [])) if (a.state !== 'ENDED') await zp(['bridge', 'down', a.id]).catch(() => {})
  }
  await mesh?.stop()
  await fake?.stop()
  for (const id of made) {
    for (const pid of await bridgeProcesses(id)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // it ended meanwhile
      }
    }
  }
  await scratch?.remove()
})

describe('the Ray launcher on the fake head, with a stand-in for the node', () => {
  /** a "node" that says when SIGTERM reached it, then exits 0 */
  const standIn = (): string[] => ['sh', '-c', `trap 'echo drained > ${scratch.path}/drained-{index}; exit 0' TERM; while :; do sleep 0.1; done`]

  it('stop: the running node drains before Ray reports the job STOPPED; a task still waiting for CPUs never starts', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const engine = rayEngine()
    // two tasks of 3 CPUs each on a 4-CPU cluster: one runs, one waits, as in Ray
    const options: RayUp = { address: fake.address, nodes: 2, numCpus: 3 }
    const up = await engine.up(options, { argv: standIn(), bootstrap: [], drainMs: 3000 }, AbortSignal.timeout(10_000))
    made.add(up.id)
    expect(up).toMatchObject({ id: expect.stringMatching(/^ray-[0-9a-f]{6}$/), engineId: `zp-${up.id}`, requested: 2 })
    const alloc: Allocation = { ...up, engine: 'ray', state: 'PENDING', running: 0, peers: [], bootstrap: [], options, createdAt: Date.now() }
    const view = await waitFor(async () => {
      const v = await engine.view(alloc, AbortSignal.timeout(10_000))
      return v.running === 1 ? v : undefined
    }, { timeoutMs: 20_000, what: 'one node running' })
    expect(view).toEqual({ state: 'RUNNING', requested: 2, running: 1, reason: '1 node waiting for Ray to schedule its task (resources)' })
    expect(fake.job(up.engineId)).toMatchObject({ status: 'RUNNING', job_id: expect.stringMatching(/^[0-9a-f]{8}$/) })

    await engine.down(alloc, AbortSignal.timeout(60_000))
    // STOPPED only once the driver has exited, and the driver waits for its nodes to drain
    expect((await ray.info(up.engineId)).status).toBe('STOPPED')
    expect(existsSync(join(scratch.path, 'drained-0'))).toBe(true)
    expect(existsSync(join(scratch.path, 'drained-1'))).toBe(false)
    expect(await bridgeProcesses(up.id)).toEqual([])
    expect(await scratchDirs(up.id)).toEqual([])
    const logs = await ray.logs(up.engineId)
    expect(logs).toMatch(/\(run_node pid=\d+\) zp-ray: node 0 started: pid \d+/)
    expect(logs).toContain('zp-ray: node 0 draining: the job is stopping')
    expect(logs).toContain('zp-ray: node 0 exited with code 0')
    expect(logs).not.toContain('node 1 started')
    expect(await engine.view(alloc, AbortSignal.timeout(10_000))).toMatchObject({ state: 'ENDED', running: 0 })
    // releasing it again is fine: the job is final
    await engine.down(alloc, AbortSignal.timeout(10_000))
  })

  it('a node whose Ray worker is SIGKILLed gets SIGTERM (parent-death signal) and drains on its own; the job FAILS saying so', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const engine = rayEngine()
    const options: RayUp = { address: fake.address, nodes: 1 }
    const up = await engine.up(options, { argv: standIn(), bootstrap: [], drainMs: 3000 }, AbortSignal.timeout(10_000))
    made.add(up.id)
    const alloc: Allocation = { ...up, engine: 'ray', state: 'PENDING', running: 0, peers: [], bootstrap: [], options, createdAt: Date.now() }
    await waitFor(async () => (await engine.view(alloc, AbortSignal.timeout(10_000))).running === 1, { timeoutMs: 20_000, what: 'the node running' })
    const workers = fake.workers()
    expect(workers).toHaveLength(1)
    process.kill(workers[0]!, 'SIGKILL')
    await waitFor(() => existsSync(join(scratch.path, 'drained-0')) || undefined, { timeoutMs: 10_000, what: 'the orphaned node to get SIGTERM' })
    const failed = await waitFor(async () => {
      const v = await engine.view(alloc, AbortSignal.timeout(10_000))
      return v.state === 'FAILED' ? v : undefined
    }, { timeoutMs: 20_000, what: 'the job to fail' })
    expect(failed.reason).toContain('node 0 lost: The worker died unexpectedly while executing this task.')
    await waitFor(async () => (await bridgeProcesses(up.id)).length === 0, { timeoutMs: 10_000, what: 'the drained node to exit' })
  })
})

describe('Ray bridge: a Ray job\'s tasks become mesh nodes', () => {
  beforeAll(async () => {
    if (skipReason != null) return
    mesh = await createProcessMesh()
    coord = await mesh.start('coord', { args: ['--slots', '4'] })
    const local = await zp(['submit', await campaignFile('squares-local', { replicas: 0 }), '--wait', '--json'], 180_000)
    expect(local.code, local.stderr).toBe(0)
    reference = (await zp(['results', (JSON.parse(local.stdout) as CampaignStatus).id])).stdout
    expect(reference.trim().split('\n')).toHaveLength(SHARDS * 3)
  })

  it('zp bridge ray up --nodes 2: two nodes labelled bridge=ray join; a campaign requiring them matches a local run; down stops the job and leaves nothing', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const up = await zp(['bridge', 'ray', 'up', '--address', fake.address, '--nodes', '2', '--idle', '0', '--json'])
    expect(up.code, up.stderr).toBe(0)
    const alloc = JSON.parse(up.stdout) as Allocation
    made.add(alloc.id)
    expect(alloc).toMatchObject({ engine: 'ray', engineId: `zp-${alloc.id}`, requested: 2, state: 'PENDING' })
    const job = alloc.engineId
    const peers = await waitFor(async () => {
      const p = (await bridgedPeers(alloc.id)).filter(x => x.state === 'alive')
      return p.length === 2 ? p : undefined
    }, { timeoutMs: 90_000, what: 'two bridged nodes alive in the mesh' })
    expect(peers.map(p => p.name).sort()).toEqual([`${alloc.id}-0`, `${alloc.id}-1`])
    expect(peers.map(p => p.capabilities?.labels)).toEqual([
      { bridge: 'ray', 'ray.job': job, 'zp.bridge': alloc.id },
      { bridge: 'ray', 'ray.job': job, 'zp.bridge': alloc.id }
    ])
    const table = await zp(['peers'])
    expect(table.stdout).toContain(`${alloc.id}-0`)
    const listed = await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'RUNNING' && a.running === 2), { timeoutMs: 30_000, what: 'the allocation RUNNING 2/2' })
    expect(listed.peers.sort()).toEqual(peers.map(p => p.peerId).sort())
    // the head knows which mesh the job serves
    expect(fake.job(job)).toMatchObject({ status: 'RUNNING', metadata: { 'zp.bridge': alloc.id, 'zp.mesh': coord.info!.peerId } })

    const submit = await zp(['submit', await campaignFile('squares-ray', { requires: { labels: { bridge: 'ray' } }, params: { slowMs: 30 } }), '--json'])
    expect(submit.code, submit.stderr).toBe(0)
    const id = (JSON.parse(submit.stdout) as CampaignStatus).id
    const final = await waitFor(async () => {
      const s = await status(id)
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    // only the Ray nodes ran it: the coordinator has free slots but not the label
    expect(final.workers.length).toBeGreaterThan(0)
    expect(final.workers.every(w => w.name.startsWith(`${alloc.id}-`))).toBe(true)
    expect((await zp(['results', id])).stdout).toBe(reference)

    const down = await zp(['bridge', 'down', alloc.id])
    expect(down.code, down.stderr).toBe(0)
    expect(down.stdout).toContain(`${alloc.id}\treleased (ray ${job})`)
    expect((await ray.info(job)).status).toBe('STOPPED')
    // the nodes drained before the driver ended: no process of the job is left, nor its scratch dirs
    expect(await bridgeProcesses(alloc.id)).toEqual([])
    expect(await scratchDirs(alloc.id)).toEqual([])
    const logs = await ray.logs(job)
    expect(logs).toContain('zp-ray: node 0 exited with code 0')
    expect(logs).toContain('zp-ray: node 1 exited with code 0')
    await waitFor(async () => (await bridgedPeers(alloc.id)).every(p => p.state === 'dead'), { timeoutMs: 30_000, what: 'the Ray nodes gone from the mesh' })
    expect((await allocations()).find(a => a.id === alloc.id)).toMatchObject({ state: 'ENDED', running: 0 })
  })

  it('a campaign with --burst ray:2@HEAD brings its nodes up, runs on them, and releases the job when it ends', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const file = await campaignFile('squares-burst', { requires: { labels: { bridge: 'ray' } }, params: { slowMs: 30 } })
    const submit = await zp(['submit', file, '--burst', `ray:2@${fake.address}`, '--json'])
    expect(submit.code, submit.stderr).toBe(0)
    const id = (JSON.parse(submit.stdout) as CampaignStatus).id
    const alloc = await waitFor(async () => (await allocations()).find(a => a.campaignId === id), { timeoutMs: 30_000, what: 'the burst allocation' })
    made.add(alloc.id)
    expect(alloc).toMatchObject({ engine: 'ray', requested: 2, options: { nodes: 2, address: fake.address } })
    const final = await waitFor(async () => {
      const s = await status(id)
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    expect(final.workers.every(w => w.name.startsWith(`${alloc.id}-`))).toBe(true)
    expect((await zp(['results', id])).stdout).toBe(reference)
    // released with its campaign: the job stopped, nothing of it runs, the registry says so
    await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'ENDED'), { timeoutMs: 60_000, what: 'the burst allocation ENDED' })
    expect((await ray.info(alloc.engineId)).status).toBe('STOPPED')
    expect(await bridgeProcesses(alloc.id)).toEqual([])
  })

  it('nodes with nothing to do leave on their own (--idle): the job SUCCEEDS and the allocation ENDS', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const up = await zp(['bridge', 'ray', 'up', '--address', fake.address, '--nodes', '1', '--idle', '2s', '--json'])
    expect(up.code, up.stderr).toBe(0)
    const alloc = JSON.parse(up.stdout) as Allocation
    made.add(alloc.id)
    await waitFor(async () => (await bridgedPeers(alloc.id)).length === 1, { timeoutMs: 90_000, what: 'the node to join' })
    const ended = await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'ENDED'), { timeoutMs: 90_000, what: 'the allocation ENDED' })
    expect(ended).toMatchObject({ running: 0, reason: 'the Ray job ended: every node left (idle)' })
    expect(await ray.info(alloc.engineId)).toMatchObject({ status: 'SUCCEEDED', driverExitCode: 0 })
    await waitFor(async () => (await bridgeProcesses(alloc.id)).length === 0, { timeoutMs: 10_000, what: 'the job\'s processes to end' })
  })

  it('Ray\'s refusals are clear errors with a non-zero exit, and nothing is recorded', async ({ skip }) => {
    if (skipReason != null) return skip(skipReason)
    const before = (await allocations()).length
    fake.takeNextSubmissionId()
    const duplicate = await zp(['bridge', 'ray', 'up', '--address', fake.address, '--nodes', '1'])
    expect(duplicate.code).not.toBe(0)
    expect(duplicate.stderr).toMatch(/the submission id zp-ray-[0-9a-f]{6} is already taken on http:\/\/127\.0\.0\.1:\d+/)
    expect(duplicate.stderr).toContain('already exists. Please use a different submission_id.')

    fake.failNext('submit', 500, 'No available agent to submit job, please try again later.')
    const failed = await zp(['bridge', 'ray', 'up', '--address', fake.address, '--nodes', '1'])
    expect(failed.code).not.toBe(0)
    expect(failed.stderr).toContain('(500, Ray said: "No available agent to submit job, please try again later.")')
    expect(failed.stderr).toContain('dashboard.log')

    const nowhere = await zp(['bridge', 'ray', 'up', '--address', 'http://127.0.0.1:2', '--nodes', '1'])
    expect(nowhere.code).not.toBe(0)
    expect(nowhere.stderr).toContain('cannot reach the Ray dashboard at http://127.0.0.1:2')
    expect((await allocations()).length).toBe(before)
  })
})
