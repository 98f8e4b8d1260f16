import { afterAll, afterEach, beforeAll } from 'vitest'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { LocalNode, type LocalNodeSpec } from '../../bootstrap/local.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { missingPackages, NetnsLab } from '../clusters/netns.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, runCli } from './harness.ts'

// What the tests of nodes in network namespaces (partition, overlay) share: each node's API listens on its
// namespace's loopback, so every look at it is a zp process run inside that namespace.

export const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED']
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

export interface NsNode {
  node: LocalNode
  /** runs a command in the node's namespace (`ip netns exec NS`) */
  wrap: string[]
  peerId: string
}

export async function zpIn (n: NsNode, args: string[]): Promise<string> {
  const r = await runCli('zp', [...args, '--data-dir', n.node.dataDir], { wrap: n.wrap })
  if (r.code !== 0) throw new Error(`zp ${args.join(' ')} on ${n.node.name} exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout
}

export async function statusIn (n: NsNode, id: string): Promise<CampaignStatus> {
  return JSON.parse(await zpIn(n, ['status', id, '--json'])) as CampaignStatus
}

export async function peersIn (n: NsNode): Promise<PeerJson[]> {
  return JSON.parse(await zpIn(n, ['peers', '--json'])) as PeerJson[]
}

/** A campaign's audit records, read from its run folder ([] before the first). */
export async function auditOf (runDir: string): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(join(runDir, 'audit.jsonl'), 'utf8').catch(() => '')
  return text.trim().split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
}

/** A campaign file in `dir` running the squares fixture over `shards`, three attempts a shard. */
export async function squaresCampaign (dir: string, name: string, shards: Record<string, unknown>, params: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.json`)
  await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, shards, params, retry: { maxAttempts: 3, initialDelay: '50ms' } }))
  return file
}

/** The JSONL export of `file` run on one undisturbed node outside any namespace: what a disturbed run must equal. */
export async function referenceResults (file: string): Promise<string> {
  const m = await createProcessMesh()
  try {
    const solo = await m.start('reference', { args: ['--slots', '2'] })
    const id = (await runCli('zp', ['submit', file, '--data-dir', solo.dataDir])).stdout.trim()
    const client = await m.api(solo)
    await waitFor(async () => FINAL.includes((await client.get<CampaignStatus>(`/v1/campaigns/${id}`)).state), { timeoutMs: 120_000, what: 'the reference run to end' })
    return await client.get<string>(`/v1/campaigns/${id}/results?format=jsonl`)
  } finally {
    await m.stop()
  }
}

export interface LabFixture {
  /** why the lab cannot be built here (the test skips with it), once beforeAll ran */
  skipReason?: string
  lab: NetnsLab
  /** a temp folder for the test's files and its nodes' data dirs, kept when a test failed */
  scratch: string
  /** nodes started in a test: stopped after it */
  nodes: LocalNode[]
  /** spawns a node (recorded in `nodes`) and waits for it to run */
  start: (spec: LocalNodeSpec) => Promise<NsNode>
}

/**
 * Registers the hooks of a test file whose nodes run in a NetnsLab: the lab (or the reason it cannot be
 * built, with the Debian packages it lacks), a scratch folder, nodes stopped after each test, and everything
 * removed at the end (the nodes' data dirs kept, with their logs, when a test failed).
 */
export function labFixture (opts: { prefix: string, hosts: number, what: string, packages?: Record<string, string>, defaultRoute?: boolean }): LabFixture {
  const fx = { nodes: [] as LocalNode[] } as unknown as LabFixture
  let scratch: { path: string, remove: () => Promise<void> } | undefined
  let failed = false
  fx.start = async (spec) => {
    const node = await LocalNode.spawn(spec)
    fx.nodes.push(node)
    const info = await node.ready({ timeoutMs: 60_000 })
    return { node, wrap: spec.wrap ?? [], peerId: info.peerId }
  }
  beforeAll(async () => {
    const missing = missingPackages(opts.packages ?? {})
    const made = missing.length > 0 ? `install ${missing.join(' ')} (Debian packages)` : NetnsLab.create(opts.prefix, opts.hosts, { defaultRoute: opts.defaultRoute })
    if (typeof made === 'string') {
      fx.skipReason = made
      console.warn(`skipped: ${opts.what} cannot run here: ${made}`)
      return
    }
    fx.lab = made
    scratch = await tempDir(`${opts.prefix}-`)
    fx.scratch = scratch.path
  })
  afterEach(async (ctx) => {
    failed ||= ctx.task.result?.state === 'fail'
    await Promise.all(fx.nodes.map(async n => await n.stop(10_000)))
    fx.nodes.length = 0
  })
  afterAll(async () => {
    fx.lab?.remove()
    if (scratch == null) return
    if (failed) console.warn(`kept the nodes' data dirs (logs/node.log) for a look: ${scratch.path}`)
    else await scratch.remove()
  })
  return fx
}
