import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, stringify } from 'yaml'
import type { LocalNode } from '../../bootstrap/local.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { tempDir } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/monte-carlo/', import.meta.url))
const PRICES = fileURLToPath(new URL('../../examples/prices.yaml', import.meta.url))

let scratch: { path: string, remove: () => Promise<void> }
let mesh: ProcessMesh
let n1: LocalNode
/** the Monte Carlo example at 12 shards of 3,000,000 paths: about 0.2 s each here */
let campaign: string

async function zp (args: string[], timeoutMs = 120_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return await runCli('zp', [...args, '--data-dir', n1.dataDir], { timeoutMs })
}

beforeAll(async () => {
  scratch = await tempDir('zp-dry-run-')
  const spec = parse(await readFile(join(EXAMPLE, 'campaign.yaml'), 'utf8')) as { shards: { iterations: Record<string, number> } }
  spec.shards.iterations = { ...spec.shards.iterations, total: 36_000_000, perShard: 3_000_000 }
  campaign = join(scratch.path, 'campaign.yaml')
  await writeFile(campaign, stringify(spec))
  await copyFile(join(EXAMPLE, 'price.mjs'), join(scratch.path, 'price.mjs'))
  mesh = await createProcessMesh()
  // one slot: the run's shards, like the calibration's, run one at a time; two at once beside the node on a
  // 2-core box would time the contention, not the estimator
  n1 = await mesh.start('n1', { args: ['--slots', '1'] })
})

afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
})

describe('zp submit --dry-run', () => {
  it('without a node: validates, runs a few shards here and prints the shard count and an estimate for this machine alone', async () => {
    const r = await runCli('zp', ['submit', campaign, '--dry-run', '--calibrate', '2'], { env: { ZP_DATA_DIR: join(scratch.path, 'no-node') }, timeoutMs: 120_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain('option-pricing: module workload, 12 shards (36,000,000 iterations, 3,000,000 per shard)')
    expect(r.stdout).toMatch(/calibration: 2 shards run here \(0, 11\)/)
    expect(r.stdout).toMatch(/core-hours +0\.\d+ \(12 shards × [\d.]+ core-seconds/)
    expect(r.stdout).toMatch(/mesh +\d+ free slots? \(this machine\): about /)
    expect(r.stdout).toMatch(/no node to ask for the mesh's slots \(no running node found .*\): assumes this machine's \d+ cores as the only slots/)
    // progress goes to stderr, the estimate alone to stdout
    expect(r.stderr).toMatch(/calibrating option-pricing: running 2 of its 12 shards here/)
    expect(r.stderr).toMatch(/shard 11 \(2\/2\): [\d.]+ s wall, [\d.]+ s CPU/)
  })

  it('refuses a bad campaign file with exit 2, naming the field, before it runs anything', async () => {
    const bad = join(scratch.path, 'bad.yaml')
    await writeFile(bad, (await readFile(campaign, 'utf8')).replace('perShard: 3000000', 'perShard: 0'))
    const r = await zp(['submit', bad, '--dry-run'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad\.yaml: invalid campaign:\n {2}- shards\.iterations\.perShard: /)
    expect(r.stderr).not.toContain('calibrating')
  })

  it('refuses a malformed price table with exit 2, naming the field, before it calibrates', async () => {
    const prices = join(scratch.path, 'prices.yaml')
    await writeFile(prices, 'currency: EUR\ndefault: { coreHour: cheap, gpuHour: 1 }\nbridges: { k8s: { coreHour: -1 } }\n')
    const r = await zp(['submit', campaign, '--dry-run', '--prices', prices])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`${prices}: invalid price table:\n  - default.coreHour: a price per hour: a number, 0 or more\n  - bridges.k8s.coreHour: a price cannot be negative\n`)
    expect(r.stderr).not.toContain('calibrating')
  })
})

describe('a burst\'s maxCost', () => {
  it('refuses a submit whose burst is estimated above it: exit 2, and nothing is stored', async () => {
    const r = await zp(['submit', campaign, '--prices', PRICES, '--burst', 'k8s:2@zp-node:test', '--max-cost', '0.000001', '--calibrate', '1'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/burst k8s +[\d.e-]+ \(its nodes for the whole time, busy or not, at bridges\.k8s\)/)
    expect(r.stderr).toMatch(/zp: error: the burst's estimated cost [\d.e-]+ USD exceeds its maxCost 0\.000001; nothing was submitted: raise maxCost/)
    const status = await zp(['status', '--json'])
    expect(JSON.parse(status.stdout)).toEqual([])
    expect(JSON.parse((await zp(['runs', '--json'])).stdout)).toEqual([])
  })

  it('without --prices, the node refuses it and the CLI says how to get an estimate', async () => {
    const r = await zp(['submit', campaign, '--burst', 'k8s:2@zp-node:test', '--max-cost', '5'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('zp: error: the campaign\'s burst: it has maxCost 5 but no cost estimate; submit it with \'zp submit FILE --prices prices.yaml\' so its cost is estimated first\n')
    expect(JSON.parse((await zp(['runs', '--json'])).stdout)).toEqual([])
  })

  it('within it, the submit goes through with the estimate stamped into the burst the node stores', async () => {
    const r = await zp(['submit', campaign, '--prices', PRICES, '--burst', 'k8s:2@zp-node:test', '--max-cost', '5', '--calibrate', '1', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/maxCost +5 USD: the burst is within it/)
    const submitted = JSON.parse(r.stdout) as CampaignStatus
    // its shards are not what this test is about
    await zp(['cancel', submitted.id])
    const config = JSON.parse(await readFile(join(submitted.runDir, 'config.json'), 'utf8')) as { spec: { burst: Record<string, unknown> } }
    const printed = Number(/burst k8s +([\d.e-]+) \(its nodes/.exec(r.stderr)![1])
    expect(config.spec.burst).toMatchObject({ k8s: { nodes: 2, image: 'zp-node:test' }, maxCost: 5, estimate: { currency: 'USD', gpuHours: 0 } })
    const estimate = config.spec.burst.estimate as { cost: number, coreHours: number, hours: number }
    expect(Number(estimate.cost.toPrecision(3))).toBe(printed)
    // 2 nodes × 1 core for the run plus the default idle timeout of 2 minutes, at 0.04 a core-hour
    expect(estimate.coreHours).toBeCloseTo(2 * estimate.hours, 12)
    expect(estimate.hours).toBeGreaterThan(120 / 3600)
    expect(estimate.cost).toBeCloseTo(estimate.coreHours * 0.04, 12)
  })
})

describe('the estimate against a real run', () => {
  it('the dry run\'s core-seconds are within 30% of the shard times the coordinator measured', async () => {
    const dry = await zp(['submit', campaign, '--dry-run', '--json'])
    expect(dry.code, dry.stderr).toBe(0)
    const est = JSON.parse(dry.stdout) as { campaign: { shards: number }, coreSeconds: number, mesh: { peers: number }, finish: { mesh: { slots: number, seconds: number } } }
    expect(est.campaign.shards).toBe(12)
    // it asked the node: one peer, its one free slot
    expect(est.mesh.peers).toBe(1)
    expect(est.finish.mesh.slots).toBe(1)

    const run = await zp(['submit', campaign, '--wait', '--json'])
    expect(run.code, run.stderr).toBe(0)
    const final = JSON.parse(run.stdout) as CampaignStatus
    expect(final.state).toBe('SUCCEEDED')
    expect(final.shards.done).toBe(12)
    // each shard's duration as its worker measured it and the coordinator recorded it, summed per worker
    const measuredMs = final.workers.reduce((sum, w) => sum + w.busyMs, 0)
    const ratio = est.coreSeconds * 1000 / measuredMs
    expect(ratio, `estimated ${est.coreSeconds.toFixed(2)} core-seconds, the run's shards took ${(measuredMs / 1000).toFixed(2)} s`).toBeGreaterThan(0.7)
    expect(ratio).toBeLessThan(1.3)
  })
})
