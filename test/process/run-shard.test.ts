import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { open, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { ZP_NODE_BIN } from '../../bootstrap/local.ts'
import { detachedPaths, finishedShards, readManifest, readShardError, readShardOutput } from '../../bootstrap/slurm/manifest.ts'
import { buildOnnxExample, type OnnxExample } from '../../examples/onnx-batch/build.ts'
import type { ZpNode } from '../../node/node.ts'
import { planCampaign, writeDetached, type PlannedCampaign } from '../fixtures/detached.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { exported, finished } from '../mesh/campaigns.ts'
import { createMesh, type Mesh } from '../mesh/harness.ts'
import { runCli } from './harness.ts'

// `zp-node run-shard` as a Slurm array task runs it: a real child process on a
// detached folder, its rows checked against the same campaign run by a mesh.

const MONTE_CARLO = fileURLToPath(new URL('../../examples/monte-carlo', import.meta.url))
const RUNNERS = fileURLToPath(new URL('../fixtures/runners', import.meta.url))

let scratch: { path: string, remove: () => Promise<void> }
let mesh: Mesh
let node: ZpNode
let onnx: OnnxExample
const children = new Set<ChildProcess>()

async function runShard (dir: string, index: number, args: string[] = []): Promise<{ code: number, stdout: string, stderr: string }> {
  return await runCli('zp-node', ['run-shard', '--manifest', dir, '--index', String(index), ...args], { timeoutMs: 60_000 })
}

/** The campaign on the in-process mesh: its export, each line `{ shard, ...row }`. */
async function meshExport (body: { spec: Record<string, unknown>, baseDir: string } | { file: string }): Promise<string> {
  const { id } = await node.campaigns.submit(body)
  const status = await finished(node, id, 120_000)
  expect(status.state).toBe('SUCCEEDED')
  return await exported(node, id)
}

/** Runs every shard of `campaign` with run-shard in a detached folder; the out files as the export would show them. */
async function detachedRun (name: string, campaign: PlannedCampaign): Promise<{ dir: string, export: string }> {
  const dir = join(scratch.path, name)
  await writeDetached(dir, `c-${name}`, campaign)
  let text = ''
  for (const { index } of campaign.shards) {
    const r = await runShard(dir, index)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    for (const line of (await readFile(detachedPaths(dir).output(index), 'utf8')).split('\n').slice(0, -1)) {
      text += JSON.stringify({ shard: index, ...JSON.parse(line) as object }) + '\n'
    }
  }
  expect(await finishedShards(dir)).toEqual(campaign.shards.map(s => s.index))
  return { dir, export: text }
}

/** A one-shard campaign of test/fixtures/runners/behaviours.mjs doing `mode`, in its own detached folder. */
async function behaviour (mode: string, extra: Record<string, unknown> = {}): Promise<string> {
  const campaign = await planCampaign({
    name: `behaviour-${mode}`, workload: { kind: 'module', module: './behaviours.mjs' }, shards: { iterations: { total: 1, perShard: 1, seed: 1 } }, params: { mode }, ...extra
  }, RUNNERS, join(scratch.path, 'store'))
  const dir = join(scratch.path, `behaviour-${mode}`)
  await writeDetached(dir, `c-${mode}`, campaign)
  return dir
}

beforeAll(async () => {
  scratch = await tempDir('zp-run-shard-')
  onnx = await buildOnnxExample({ dir: join(scratch.path, 'onnx'), rows: 3000 })
  mesh = await createMesh()
  node = await mesh.start({ dataRoots: [MONTE_CARLO, onnx.dir] })
})
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await mesh?.stop()
  await scratch?.remove()
})

describe('zp-node run-shard', () => {
  it('runs Monte Carlo shards to the same bytes as a mesh worker', async () => {
    const raw = { ...parse(await readFile(join(MONTE_CARLO, 'campaign.yaml'), 'utf8')) as Record<string, unknown>, shards: { iterations: { total: 200_000, perShard: 50_000, seed: 42 } } }
    const campaign = await planCampaign(raw, MONTE_CARLO, join(scratch.path, 'store'))
    const expected = await meshExport({ spec: raw, baseDir: MONTE_CARLO })
    const detached = await detachedRun('monte-carlo', campaign)
    expect(expected.split('\n').length).toBe(5)
    expect(detached.export).toBe(expected)
    const out = await readShardOutput(detached.dir, 3)
    expect(out?.meta).toMatchObject({ attempt: 1, rows: 1, host: expect.any(String) })
  })

  it('runs ONNX shards, reading its rows in place in the data set, to the same bytes as a mesh worker', async () => {
    const raw = parse(await readFile(onnx.campaign, 'utf8')) as Record<string, unknown>
    const campaign = await planCampaign(raw, onnx.dir, join(scratch.path, 'store'))
    expect(campaign.shards.length).toBe(2)
    const expected = await meshExport({ file: onnx.campaign })
    const detached = await detachedRun('onnx', campaign)
    expect(expected.split('\n').length).toBe(3001)
    expect(detached.export).toBe(expected)
    expect((await readShardOutput(detached.dir, 1))?.meta).toMatchObject({ rows: 1000, info: { executionProvider: 'cpu' } })
  })

  it('refuses an ONNX shard whose bytes are not its slice: exit 3, nothing committed', async () => {
    const campaign = await planCampaign(parse(await readFile(onnx.campaign, 'utf8')) as Record<string, unknown>, onnx.dir, join(scratch.path, 'store-tampered'))
    const dir = join(scratch.path, 'onnx-tampered')
    await writeDetached(dir, 'c-tampered', campaign)
    const manifest = await readManifest(dir)
    if (manifest.workload.kind !== 'onnx') throw new Error('expected an onnx manifest')
    // one byte of shard 1's rows changed, the size kept
    const data = await open(join(dir, manifest.blobs[manifest.workload.data.blob.hash]!), 'r+')
    await data.write('9', campaign.shards[1]!.kind === 'rows' ? campaign.shards[1]!.byteStart + 1 : 0)
    await data.close()
    const r = await runShard(dir, 1)
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/^zp-node run-shard: error: bytes \[\d+, \d+\) of data.csv at .* have sha256 [0-9a-f]{64}, not the slice's [0-9a-f]{64}: the data set was changed after the campaign was submitted \(not retryable\)\n$/)
    expect(await readShardError(dir, 1, 1)).toEqual({ error: expect.stringContaining('have sha256'), retryable: false })
    expect(await finishedShards(dir)).toEqual([])
    // shard 0's bytes are untouched
    expect((await runShard(dir, 0)).code).toBe(0)
  })

  it('a failing shard writes its error file and exits 1; a non-retryable failure exits 3', async () => {
    const failing = await behaviour('throw')
    const r = await runShard(failing, 0)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('simulation diverged at step 0')
    expect(await readShardError(failing, 0, 1)).toEqual({ error: expect.stringContaining('simulation diverged at step 0'), retryable: true })
    expect(await finishedShards(failing)).toEqual([])

    const permanent = await behaviour('throw-permanent')
    const p = await runShard(permanent, 0)
    expect(p.code).toBe(3)
    expect(p.stderr).toContain('parameter alpha must be positive')
    expect(p.stderr).toContain('(not retryable)')
    expect(await readShardError(permanent, 0, 1)).toEqual({ error: expect.stringContaining('parameter alpha must be positive'), retryable: false })
  })

  it('the manifest\'s shard timeout aborts the run: exit 1', async () => {
    const dir = await behaviour('cooperative', { shardTimeout: '1s' })
    const r = await runShard(dir, 0)
    expect(r.code).toBe(1)
    expect(await readShardError(dir, 0, 1)).toEqual({ error: expect.stringContaining('timed out after 1000 ms'), retryable: true })
    expect(await finishedShards(dir)).toEqual([])
  })

  it('SIGTERM aborts the shard: exit 143, no out file', async () => {
    const dir = await behaviour('cooperative')
    const child = spawn(process.execPath, [ZP_NODE_BIN, 'run-shard', '--manifest', dir, '--index', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    const exited = new Promise<number | null>(resolve => child.on('exit', code => { resolve(code) }))
    await waitFor(() => stdout.includes('shard progress'), { timeoutMs: 30_000, what: 'the shard to be running' })
    child.kill('SIGTERM')
    expect(await exited).toBe(143)
    children.delete(child)
    expect(await finishedShards(dir)).toEqual([])
    expect(await readShardError(dir, 0, 1)).toEqual({ error: expect.stringContaining('terminated by SIGTERM'), retryable: true })
  })

  it('an exec shard runs the command --exec-config names, and without it exits 3 saying so', async () => {
    const campaign = await planCampaign({ name: 'exec', workload: { kind: 'exec', command: 'integrate' }, shards: { iterations: { total: 1, perShard: 1, seed: 1 } } }, scratch.path, join(scratch.path, 'store'))
    const dir = join(scratch.path, 'exec')
    await writeDetached(dir, 'c-exec', campaign)
    const none = await runShard(dir, 0)
    expect(none.code).toBe(3)
    expect(none.stderr).toContain("exec command 'integrate' needs --exec-config FILE")
    const config = join(scratch.path, 'exec-config.yaml')
    await writeFile(config, 'commands:\n  other:\n    argv: ["true"]\n')
    const other = await runShard(dir, 0, ['--exec-config', config])
    expect(other.code).toBe(3)
    expect(other.stderr).toContain(`${config} has no command 'integrate' (it has: other)`)
    expect(await readShardError(dir, 0, 1)).toEqual({ error: expect.stringContaining('has no command'), retryable: false })
    await writeFile(config, 'commands:\n  integrate:\n    argv: ["/bin/echo", "{{\\"i\\": {index}}}"]\n')
    expect((await runShard(dir, 0, ['--exec-config', config])).code).toBe(0)
    expect((await readShardOutput(dir, 0))?.output.rows).toEqual([{ i: 0 }])
  })
})
