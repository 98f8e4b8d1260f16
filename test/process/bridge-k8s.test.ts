import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { ZP_NODE_BIN, type LocalNode } from '../../bootstrap/local.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import type { Allocation } from '../../protocols/bridge/schema.ts'
import { startFakeK8s, type FakeK8s } from '../clusters/fake-k8s/index.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { bridgeCli, processesWith } from './bridge-cli.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

/*
 * The Kubernetes bridge through the real @kubernetes/client-node against the
 * fake API server of the test suite, whose kubelet runs each pod's command
 * as a local process: an Indexed Job of two pods becomes two mesh nodes (the
 * mesh key reaching them through a Secret); a campaign runs on them through a
 * pod deleted mid-way, which the Job replaces and whose node rejoins; the
 * results are those of a run on the coordinator alone; `bridge down` leaves
 * no pod, no process and no Secret. Errors the API server sends (409, 422)
 * come back from the CLI as sentences; a GPU no node has leaves the Job
 * PENDING with the scheduler's reason; a campaign's burst is released when
 * it ends.
 */
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = 40
const IMAGE = 'registry.test/zp-node:dev'
const NS = 'default'

let fake: FakeK8s
let scratch: { path: string, remove: () => Promise<void> }
let mesh: ProcessMesh
let coord: LocalNode
let core: CoreV1Api

async function up (args: string[]): Promise<Allocation> {
  const r = await zp(['bridge', 'k8s', 'up', '--image', IMAGE, '--kubeconfig', fake.kubeconfig, '--json', ...args])
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as Allocation
}

function jobOf (alloc: Allocation): string {
  return alloc.engineId.split('/')[1]!
}

function podsOf (job: string): V1Pod[] {
  return fake.pods(NS).filter(p => p.metadata?.labels?.['batch.kubernetes.io/job-name'] === job)
}

function indexOf (pod: V1Pod): string | undefined {
  return pod.metadata?.annotations?.['batch.kubernetes.io/job-completion-index']
}

async function alive (id: string, n: number, what: string): Promise<PeerJson[]> {
  return await waitFor(async () => {
    const p = (await bridged(id)).filter(x => x.state === 'alive')
    return p.length === n ? p : undefined
  }, { timeoutMs: 90_000, what })
}

/** what is left of an allocation: its pods, processes, Job and Secret */
async function leftovers (alloc: Allocation): Promise<string[]> {
  const job = jobOf(alloc)
  return [
    ...podsOf(job).map(p => `pod ${p.metadata?.name}`),
    ...(await bridgeProcesses(alloc.id)).map(pid => `process ${pid}`),
    ...fake.jobs(NS).filter(j => j.metadata?.name === job).map(() => `Job ${job}`),
    ...fake.secrets(NS).filter(s => s.metadata?.name === `${job}-psk`).map(() => `Secret ${job}-psk`)
  ]
}

const { campaignFile, zp, status, allocations, bridgedPeers: bridged } = bridgeCli({ dir: () => scratch.path, mesh: () => mesh, coord: () => coord, shards: SHARDS, timeoutMs: 150_000 })
/** pids of live processes started for an allocation (their command line carries zp.bridge=<id>) */
const bridgeProcesses = async (id: string): Promise<number[]> => await processesWith({ arg: `zp.bridge=${id}` })

beforeAll(async () => {
  scratch = await tempDir('zp-bridge-k8s-')
  // the "image": a folder the fake kubelet puts first on PATH, holding zp-node (this checkout's, on the pinned Node)
  const image = join(scratch.path, 'image')
  await mkdir(image)
  await writeFile(join(image, 'zp-node'), `#!/bin/sh\nexec '${process.execPath}' '${ZP_NODE_BIN}' "$@"\n`)
  await chmod(join(image, 'zp-node'), 0o755)
  fake = await startFakeK8s({ images: { [IMAGE]: image }, capacity: { cpu: '8', memory: '16Gi' } })
  const kc = new KubeConfig()
  kc.loadFromFile(fake.kubeconfig)
  core = kc.makeApiClient(CoreV1Api)
  await copyFile(SQUARES, join(scratch.path, 'squares.mjs'))
  const psk = join(scratch.path, 'mesh.key')
  const gen = await runCli('zp-node', ['psk', 'generate', psk])
  expect(gen.code, gen.stderr).toBe(0)
  mesh = await createProcessMesh()
  // KUBECONFIG: what `--burst k8s:N@IMAGE` (no --kubeconfig) uses
  coord = await mesh.start('coord', { args: ['--slots', '4', '--psk', psk], env: { KUBECONFIG: fake.kubeconfig } })
})

afterAll(async () => {
  await mesh?.stop()
  await fake?.stop()
  await scratch?.remove()
})

describe('Kubernetes bridge', () => {
  it('an Indexed Job of two pods becomes two mesh nodes; a campaign runs on them through a deleted pod, which the Job replaces; bridge down leaves nothing', async () => {
    const local = await zp(['submit', await campaignFile('squares-local', { replicas: 0 }), '--wait', '--json'], 180_000)
    expect(local.code, local.stderr).toBe(0)
    const reference = (await zp(['results', (JSON.parse(local.stdout) as CampaignStatus).id])).stdout

    const alloc = await up(['--nodes', '2', '--cpu', '2'])
    expect(alloc).toMatchObject({ engine: 'k8s', requested: 2, engineId: expect.stringMatching(new RegExp(`^${NS}/zp-`)) })
    const job = jobOf(alloc)
    // the mesh key reached the pods through a Secret that Kubernetes deletes with the Job
    const secret = fake.secrets(NS).find(s => s.metadata?.name === `${job}-psk`)
    expect(secret?.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Job', name: job })])

    const first = await alive(alloc.id, 2, 'a mesh node in each pod')
    expect(first.map(p => p.name).sort()).toEqual([`${alloc.id}-0`, `${alloc.id}-1`])
    expect(first.every(p => p.capabilities?.labels?.bridge === 'k8s' && p.capabilities.labels['k8s.job'] === job)).toBe(true)
    const listed = await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'RUNNING' && a.running === 2))
    expect(listed.peers.sort()).toEqual(first.map(p => p.peerId).sort())

    const submit = await zp(['submit', await campaignFile('squares-k8s', { requires: { labels: { bridge: 'k8s' } }, params: { slowMs: 60 } }), '--json'])
    expect(submit.code, submit.stderr).toBe(0)
    const id = (JSON.parse(submit.stdout) as CampaignStatus).id
    await waitFor(async () => (await status(id)).shards.done >= 8, { timeoutMs: 120_000, what: 'eight shards done on the Kubernetes nodes' })
    // delete index 0's pod through the API: its node drains and leaves, the Job makes a new pod for the index
    const victim = podsOf(job).find(p => indexOf(p) === '0')!
    const victimPeer = first.find(p => p.name === `${alloc.id}-0`)!.peerId
    await core.deleteNamespacedPod({ name: victim.metadata!.name!, namespace: NS })
    const final = await waitFor(async () => {
      const s = await status(id)
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 180_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: SHARDS, done: SHARDS, failed: 0 } })
    expect(final.workers.map(w => w.name).every(n => n.startsWith(`${alloc.id}-`))).toBe(true)
    expect((await zp(['results', id])).stdout).toBe(reference)

    // the replacement pod (same index, new name) runs a node that joins under the same name
    const replacement = await waitFor(() => podsOf(job).find(p => indexOf(p) === '0' && p.metadata?.name !== victim.metadata?.name && p.status?.phase === 'Running'), { timeoutMs: 60_000, what: 'the Job to replace the deleted pod' })
    expect(replacement.metadata?.name).toMatch(new RegExp(`^${job}-0-[a-z0-9]{5}$`))
    await waitFor(async () => (await bridged(alloc.id)).some(p => p.name === `${alloc.id}-0` && p.state === 'alive' && p.peerId !== victimPeer), { timeoutMs: 90_000, what: 'the replacement pod\'s node in the mesh' })
    await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.state === 'RUNNING' && a.running === 2), { what: 'the allocation RUNNING on two pods again' })

    const down = await zp(['bridge', 'down', alloc.id])
    expect(down.code, down.stderr).toBe(0)
    // down returns once nothing is left
    expect(await leftovers(alloc)).toEqual([])
    await waitFor(async () => (await bridged(alloc.id)).every(p => p.state === 'dead'), { timeoutMs: 30_000, what: 'the Kubernetes nodes gone from the mesh' })
    expect((await allocations()).find(a => a.id === alloc.id)).toMatchObject({ state: 'ENDED' })
  })

  it('a 409 and a 422 from the API server are clear errors with a non-zero exit, and leave nothing behind', async () => {
    const before = (await allocations()).length
    // a name taken twice over (the bridge retries once under a new name)
    fake.failNext('POST', /\/namespaces\/default\/jobs$/, 409, 'jobs.batch "zp-taken" already exists')
    fake.failNext('POST', /\/namespaces\/default\/jobs$/, 409, 'jobs.batch "zp-taken" already exists')
    const conflict = await zp(['bridge', 'k8s', 'up', '--nodes', '1', '--image', IMAGE, '--kubeconfig', fake.kubeconfig])
    expect(conflict.code).not.toBe(0)
    expect(conflict.stderr).toContain('already exists (409')
    expect(conflict.stderr).toContain('kubectl -n default delete job')

    fake.failNext('POST', /\/namespaces\/default\/jobs$/, 422, 'Job.batch "zp-x" is invalid: spec.template.spec.containers[0].image: Required value')
    const invalid = await zp(['bridge', 'k8s', 'up', '--nodes', '1', '--image', IMAGE, '--kubeconfig', fake.kubeconfig])
    expect(invalid.code).not.toBe(0)
    expect(invalid.stderr).toContain('as invalid (422')
    expect(invalid.stderr).toContain('spec.template.spec.containers[0].image')

    expect((await allocations()).length).toBe(before)
    expect(fake.jobs(NS).filter(j => j.status?.conditions?.find(c => c.type === 'Complete' || c.type === 'Failed') == null)).toEqual([])
    // the Secret made before each refused Job was deleted again
    expect(fake.secrets(NS).filter(s => s.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'zp-mesh')).toEqual([])
  })

  it('a GPU no node has: PENDING with the scheduler\'s reason in zp bridge list; down removes the pending pod', async () => {
    const alloc = await up(['--nodes', '1', '--gpus', '1'])
    const pending = await waitFor(async () => (await allocations()).find(a => a.id === alloc.id && a.reason != null))
    expect(pending).toMatchObject({ state: 'PENDING', running: 0, requested: 1 })
    expect(pending.reason).toContain('Unschedulable')
    expect(pending.reason).toContain('nvidia.com/gpu')
    const table = await zp(['bridge', 'list'])
    expect(table.stdout).toContain('Unschedulable')
    const down = await zp(['bridge', 'down', alloc.id])
    expect(down.code, down.stderr).toBe(0)
    // down returns once nothing is left
    expect(await leftovers(alloc)).toEqual([])
  })

  it('--burst k8s:2@IMAGE brings two pods up for a campaign (kubeconfig from the node\'s KUBECONFIG) and releases them when it ends', async () => {
    const file = await campaignFile('squares-burst', { requires: { labels: { bridge: 'k8s' } } })
    const r = await zp(['submit', file, '--burst', `k8s:2@${IMAGE}`, '--wait', '--json'], 180_000)
    expect(r.code, r.stderr).toBe(0)
    const s = JSON.parse(r.stdout) as CampaignStatus
    expect(s).toMatchObject({ state: 'SUCCEEDED', shards: { done: SHARDS } })
    const alloc = await waitFor(async () => (await allocations()).find(a => a.campaignId === s.id && a.state === 'ENDED'), { timeoutMs: 90_000, what: 'the burst released' })
    expect(alloc.engine).toBe('k8s')
    expect(s.workers.map(w => w.name).every(n => n.startsWith(`${alloc.id}-`))).toBe(true)
    // the release runs in the node after the campaign ended: the list says ENDED once the Job is gone, its pods follow
    await waitFor(async () => (await leftovers(alloc)).length === 0, { timeoutMs: 60_000, what: 'the burst\'s pods, processes, Job and Secret gone' })
  })
})
