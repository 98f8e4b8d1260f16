import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { blackScholes, estimate, optionParams, type ShardRow } from '../../examples/monte-carlo/pricing.ts'
import { buildOnnxExample } from '../../examples/onnx-batch/build.ts'
import { execExampleConfig } from '../../examples/exec/config.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, runCli, waitForStates, type ProcessMesh } from './harness.ts'

const example = (path: string): string => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url))
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }
let nodes: LocalNode[]
let onnxCampaign: string

/** `file`: a campaign file, or the arguments that stand for one (`--template NAME --set …`) */
async function submitAndWait (node: LocalNode, file: string | string[]): Promise<{ code: number, status: CampaignStatus, stderr: string }> {
  const r = await runCli('zp', ['submit', ...[file].flat(), '--wait', '--json', '--data-dir', node.dataDir], { timeoutMs: 240_000 })
  return { code: r.code, status: JSON.parse(r.stdout) as CampaignStatus, stderr: r.stderr }
}

async function results (node: LocalNode, id: string, format = 'jsonl'): Promise<string> {
  const r = await runCli('zp', ['results', id, '--format', format, '--data-dir', node.dataDir])
  expect(r.code).toBe(0)
  return r.stdout
}

async function campaignFile (name: string, body: Record<string, unknown>): Promise<string> {
  const file = join(scratch.path, `${name}.yaml`)
  await writeFile(file, JSON.stringify({ name, ...body }))
  return file
}

beforeAll(async () => {
  scratch = await tempDir('zp-proc-campaign-')
  const onnx = await buildOnnxExample({ dir: join(scratch.path, 'onnx'), rows: 6000 })
  onnxCampaign = onnx.campaign
  const execConfig = await execExampleConfig(join(scratch.path, 'exec'))
  mesh = await createProcessMesh()
  const a = await mesh.start('a', { args: ['--exec-config', execConfig, '--slots', '2'] })
  const b = await mesh.start('b', { via: a, args: ['--exec-config', execConfig, '--slots', '2'] })
  const c = await mesh.start('c', { via: a, args: ['--exec-config', execConfig, '--slots', '2'] })
  nodes = [a, b, c]
  await waitFor(async () => {
    const peers = await mesh.peers(a)
    return peers.length === 3 && peers.every(p => p.state === 'alive' && p.capabilities?.capabilities['exec.rlc-tolerance']?.status === 'ok')
  }, { timeoutMs: 60_000, what: 'three nodes with their capabilities' })
})
afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
})

describe('the examples on a 3-node mesh of real processes', () => {
  it('Monte Carlo option pricing converges on Black–Scholes, with work on every node', async () => {
    const file = example('monte-carlo/campaign.yaml')
    const { code, status } = await submitAndWait(nodes[0]!, file)
    expect(code).toBe(0)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { total: 40, done: 40, failed: 0 } })
    expect(status.workers.length).toBe(3)
    const rows = (await results(nodes[0]!, status.id)).trim().split('\n').map(l => JSON.parse(l) as ShardRow & { shard: number })
    expect(rows.map(r => r.shard)).toEqual(Array.from({ length: 40 }, (_, i) => i))
    const params = optionParams((parse(await readFile(file, 'utf8')) as { params: Record<string, unknown> }).params)
    const e = estimate(rows, params)
    expect(Math.abs(e.price - blackScholes(params))).toBeLessThan(4 * e.standardError)
    const runDir = status.runDir
    const config = JSON.parse(await readFile(join(runDir, 'config.json'), 'utf8')) as Record<string, unknown>
    expect(config).toMatchObject({ id: status.id, name: 'option-pricing', specHash: expect.stringMatching(/^[0-9a-f]{64}$/) })
    expect((config.hardware as unknown[]).length).toBe(3)
    // the end is reported once the last result is stored; the final metrics line follows it
    const metrics = await waitFor(async () => {
      const lines = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as { state: string, done: number })
      return lines.at(-1)?.state === 'SUCCEEDED' ? lines : undefined
    }, { what: 'the final metrics line' })
    expect(metrics.at(-1)).toMatchObject({ state: 'SUCCEEDED', done: 40 })
  })

  it('the RLC sweep covers every grid point, and its export is byte-identical on one node', async () => {
    const file = example('sweep/campaign.yaml')
    const three = await submitAndWait(nodes[1]!, file)
    expect(three.code).toBe(0)
    const jsonl3 = await results(nodes[1]!, three.status.id)
    const csv3 = await results(nodes[1]!, three.status.id, 'csv')
    expect(jsonl3.trim().split('\n')).toHaveLength(81)
    // any node gives the same export (these hold replicas; test/mesh covers a node that holds nothing)
    expect(await results(nodes[0]!, three.status.id)).toBe(jsonl3)
    expect(await results(nodes[2]!, three.status.id, 'csv')).toBe(csv3)
    const solo = await createProcessMesh()
    try {
      const only = await solo.start('solo', { args: ['--slots', '1'] })
      const one = await submitAndWait(only, file)
      expect(one.status.workers.map(w => w.name)).toEqual(['solo'])
      expect(await results(only, one.status.id)).toBe(jsonl3)
      expect(await results(only, one.status.id, 'csv')).toBe(csv3)
    } finally {
      await solo.stop()
    }
    // the built-in template of the same sweep, its defaults (one of them given as the default would be): the same export
    const templated = await submitAndWait(nodes[1]!, ['--template', 'sweep', '--set', 'stepsPerTimeConstant=50'])
    expect(templated.code, templated.stderr).toBe(0)
    expect(await results(nodes[1]!, templated.status.id)).toBe(jsonl3)
    // a value outside its declared range is refused before anything runs, naming the parameter and the range
    const bad = await runCli('zp', ['submit', '--template', 'sweep', '--set', 'settlingBand=0.9', '--data-dir', nodes[1]!.dataDir])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/parameter settlingBand = "0\.9" is above the allowed range; it takes a number at least 0\.001 and at most 0\.5/)
    // zp runs finds both sweeps by name and state among what this node coordinated
    const runs = await runCli('zp', ['runs', '--name', 'step*sweep', '--state', 'succeeded', '--since', '1h', '--json', '--data-dir', nodes[1]!.dataDir])
    expect(runs.code, runs.stderr).toBe(0)
    expect((JSON.parse(runs.stdout) as CampaignStatus[]).map(s => s.id).sort()).toEqual([three.status.id, templated.status.id].sort())
  })

  it('batch ONNX inference matches its reference on every row', async () => {
    const { code, status } = await submitAndWait(nodes[2]!, onnxCampaign)
    expect(code).toBe(0)
    expect(status.shards.done).toBe(3)
    const summary = (await runCli('zp', ['status', status.id, '--data-dir', nodes[2]!.dataDir])).stdout
    expect(summary).toContain('SUCCEEDED')
    const correctness = await waitFor(async () => JSON.parse(await readFile(join(status.runDir, 'correctness.json'), 'utf8')) as { matchRate: number, compared: number }, { what: 'the correctness report' })
    expect(correctness).toMatchObject({ matchRate: 1, compared: 6000 })
    const rows = (await results(nodes[2]!, status.id)).trim().split('\n').map(l => JSON.parse(l) as { row: number, prediction: number })
    expect(rows.map(r => r.row)).toEqual(Array.from({ length: 6000 }, (_, i) => i))
  })

  it('an exec campaign runs the template each node allows', async () => {
    const { code, status } = await submitAndWait(nodes[0]!, example('exec/campaign.yaml'))
    expect(code).toBe(0)
    expect(status.state).toBe('SUCCEEDED')
    const rows = (await results(nodes[0]!, status.id)).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.every(r => typeof r.shard === 'number')).toBe(true)
  })
})

describe('zp against bad input and changes of plan', () => {
  it('refuses malformed campaign files with exit code 2, naming the field', async () => {
    const bad = await campaignFile('bad', { workload: { kind: 'module', module: SQUARES }, shards: { iterations: { total: -1, perShard: 1, seed: 1 } }, priorty: 'HIGH' })
    const r = await runCli('zp', ['submit', bad, '--data-dir', nodes[0]!.dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/shards\.iterations\.total: Too small/)
    expect(r.stderr).toMatch(/Unrecognized key: "priorty"/)
    const missing = await runCli('zp', ['submit', join(scratch.path, 'nope.yaml'), '--data-dir', nodes[0]!.dataDir])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/cannot read campaign file .*nope\.yaml: ENOENT/)
  })

  it('shows why a campaign is QUEUED, and cancels it', async () => {
    const file = await campaignFile('needs-gpu', {
      workload: { kind: 'module', module: SQUARES },
      shards: { iterations: { total: 10, perShard: 5, seed: 1 } },
      requires: { capabilities: ['gpu.nvidia.cuda'] }
    })
    const submitted = await runCli('zp', ['submit', file, '--data-dir', nodes[0]!.dataDir])
    expect(submitted.code).toBe(0)
    // said at once, not left to a --wait that never ends
    expect(submitted.stderr).toMatch(/warning: no peer can run c-\w+ now: no peer meets the requirements \(gpu\.nvidia\.cuda\)/)
    const id = submitted.stdout.trim()
    const status = await waitFor(async () => {
      const s = JSON.parse((await runCli('zp', ['status', id, '--json', '--data-dir', nodes[0]!.dataDir])).stdout) as CampaignStatus
      return s.waiting != null ? s : undefined
    }, { what: 'a waiting reason' })
    expect(status.state).toBe('QUEUED')
    expect(status.waiting).toMatch(/no peer meets the requirements \(gpu\.nvidia\.cuda\)/)
    const human = await runCli('zp', ['status', id, '--data-dir', nodes[0]!.dataDir])
    expect(human.stdout).toMatch(/QUEUED \(waiting: no peer meets the requirements/)
    // peers by name, with a short ID beside
    expect(human.stdout).toMatch(/coordinator +a \(12D3Ko…\w{6}\)/)
    const cancelled = await runCli('zp', ['cancel', id, '--data-dir', nodes[0]!.dataDir])
    expect(cancelled.stdout).toMatch(/CANCELLED: 0 of 2 shards done and kept/)
    // the rows of a campaign that did not succeed are partial: an error, unless asked for as such
    const partial = await runCli('zp', ['results', id, '--data-dir', nodes[0]!.dataDir])
    expect(partial.code).toBe(1)
    expect(partial.stderr).toMatch(/did not succeed \(CANCELLED\): 0 of 2 shards have results.*--partial/)
    const anyway = await runCli('zp', ['results', id, '--partial', '--data-dir', nodes[0]!.dataDir])
    expect(anyway).toMatchObject({ code: 0, stdout: '' })
    expect(anyway.stderr).toMatch(/partial results: campaign c-\w+ is CANCELLED, 0\/2 shards have results/)
    const runs = await runCli('zp', ['runs', '--json', '--data-dir', nodes[0]!.dataDir])
    expect((JSON.parse(runs.stdout) as CampaignStatus[]).find(s => s.id === id)?.state).toBe('CANCELLED')
    // an exec template no node offers: the warning says where templates come from
    const exec = await runCli('zp', ['submit', await campaignFile('no-template', { workload: { kind: 'exec', command: 'no-such-template' }, shards: { iterations: { total: 2, perShard: 1, seed: 1 } } }), '--data-dir', nodes[0]!.dataDir])
    expect(exec.code).toBe(0)
    expect(exec.stderr).toMatch(/no peer can run .*exec\.no-such-template.*--exec-config FILE defines the template no-such-template/)
    await runCli('zp', ['cancel', exec.stdout.trim(), '--data-dir', nodes[0]!.dataDir])
  })

  it('a worker stopped with SIGTERM mid-campaign hands its shards back; nothing counts as failed', async () => {
    const extra = await mesh.start('short-lived', { via: nodes[0]!, args: ['--slots', '2', '--drain-timeout-ms', '300'] })
    await waitForStates(mesh, nodes[0]!, ['short-lived'], 'alive')
    const file = await campaignFile('slow', { workload: { kind: 'module', module: SQUARES }, shards: { iterations: { total: 600, perShard: 10, seed: 4 } }, params: { slowMs: 40 } })
    const id = (await runCli('zp', ['submit', file, '--data-dir', nodes[0]!.dataDir])).stdout.trim()
    const api = await mesh.api(nodes[0]!)
    const status = async (): Promise<CampaignStatus> => await api.get<CampaignStatus>(`/v1/campaigns/${id}`)
    await waitFor(async () => (await status()).workers.some(w => w.name === 'short-lived' && w.done > 0), { timeoutMs: 60_000, what: 'the extra worker to finish a shard' })
    const exit = await extra.stop()
    expect(exit.code).toBe(0)
    const final = await waitFor(async () => {
      const s = await status()
      return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
    }, { timeoutMs: 120_000, what: 'the campaign to end' })
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 } })
    expect(final.workers.every(w => w.failed === 0)).toBe(true)
    // the drained worker's queued shards (and, at the deadline, its running ones) came back to the coordinator
    const handedBack = (await logLines(nodes[0]!)).filter(l => l.msg === 'shard handed back; re-queued (not an attempt)' && l.campaign === id)
    expect(handedBack.length).toBeGreaterThan(0)
    const rows = (await results(nodes[0]!, id)).trim().split('\n')
    expect(rows).toHaveLength(600)
  })
})
