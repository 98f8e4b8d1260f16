import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir, readdir, realpath, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadCampaignFile, resolveCampaign, type LoadOptions } from '../../node/campaign/load.ts'
import { BlobStore } from '../../node/blobs/store.ts'
import { scanDataSet } from '../../node/campaign/dataset.ts'
import { openRowReader } from '../../actors/worker/runners/onnx-data.ts'
import { ShardPlan, shardSeed } from '../../actors/coordinator/plan.ts'
import { CampaignSpecSchema } from '../../protocols/campaign/spec.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => {
  dir = await tempDir('zp-campaign-')
  await writeFile(join(dir.path, 'pi.mjs'), 'export function run () { return 1 }\n')
  await writeFile(join(dir.path, 'model.onnx'), 'not really a model, the loader does not open it')
  const rows = Array.from({ length: 10 }, (_, i) => `${i},${i * 2},"note, ${i}",${i * 3}`)
  await writeFile(join(dir.path, 'data.csv'), `id,x,comment,expected\r\n${rows.join('\r\n')}\r\n`)
  await writeFile(join(dir.path, 'data.jsonl'), Array.from({ length: 7 }, (_, i) => JSON.stringify({ x: i, y: -i })).join('\n'))
})
afterAll(async () => { await dir.remove() })

async function load (name: string, text: string) {
  const file = join(dir.path, name)
  await writeFile(file, text)
  return await loadCampaignFile(file)
}

async function loadError (text: string): Promise<string> {
  try {
    await load('bad.yaml', text)
  } catch (err) {
    expect((err as Error).name).toBe('CampaignFileError')
    return (err as Error).message
  }
  throw new Error('expected the campaign to be refused')
}

describe('campaign files', () => {
  it('loads a module campaign with defaults, durations and requirements normalized', async () => {
    const loaded = await load('mc.yaml', `
name: pi
workload: { kind: module, module: ./pi.mjs }
shards: { iterations: { total: 1000, perShard: 300, seed: 42 } }
requires: { cpuFlags: [avx2], minMemoryGB: 2, capabilities: [gpu.nvidia.cuda] }
shardTimeout: 90s
retry: { maxAttempts: 5, initialDelay: 250ms }
`)
    const spec = await resolveCampaign(loaded, async (path, name) => ({ hash: 'a'.repeat(64), size: 1, name }))
    expect(CampaignSpecSchema.parse(spec)).toBeTruthy()
    expect(spec.shardTimeoutMs).toBe(90_000)
    expect(spec.retry).toEqual({ maxAttempts: 5, initialDelayMs: 250, backoffFactor: 2, maxDelayMs: 60_000 })
    expect(spec.requires.capabilities.sort()).toEqual(['cpu.x86.avx2', 'gpu.nvidia.cuda'])
    expect(spec.requires.minMemoryBytes).toBe(2 * 2 ** 30)
    expect(spec.priority).toBe('NORMAL')
    expect(spec.workload).toEqual({ kind: 'module', module: { hash: 'a'.repeat(64), size: 1, name: 'pi.mjs' } })
  })

  it('indexes an onnx data set: rows, header, shard byte ranges (quoted commas, CRLF)', async () => {
    const loaded = await load('onnx.yaml', `
name: infer
workload:
  kind: onnx
  model: model.onnx
  data: data.csv
  input: { columns: [x] }
  reference: { column: expected, tolerance: 0.001 }
shards: { rows: { perShard: 4 } }
`)
    expect(loaded.data?.rows).toBe(10)
    expect(loaded.data?.columns).toEqual(['id', 'x', 'comment', 'expected'])
    expect(loaded.data?.offsets).toHaveLength(4)
    const exec = await load('exec.yaml', 'name: e\nworkload: { kind: exec, command: integrate }\nshards: { grid: { parameters: { a: [1, 2] } } }\n')
    expect(exec.requires.capabilities).toEqual(['exec.integrate'])
  })

  it.each([
    ['a typo in a key', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshard: { iterations: { total: 1, perShard: 1, seed: 1 } }\n', /shards: .*|shard/],
    ['a wrong type', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshards: { iterations: { total: many, perShard: 1, seed: 1 } }\n', /shards\.iterations\.total: /],
    ['an unknown workload kind', 'name: x\nworkload: { kind: docker, image: y }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\n', /workload\.kind/],
    ['two sharding modes', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 }, grid: { parameters: { a: [1] } } }\n', /shards: give exactly one of rows, iterations or grid/],
    ['a missing file', 'name: x\nworkload: { kind: module, module: nope.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\n', /workload\.module: file nope\.mjs not found/],
    ['a bad duration', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\nshardTimeout: soon\n', /shardTimeout: expected a duration/],
    ['rows sharding without a data set', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshards: { rows: { perShard: 1 } }\n', /shards\.rows: only onnx workloads/],
    ['a missing data column', 'name: x\nworkload: { kind: onnx, model: model.onnx, data: data.csv, input: { columns: [x, z] } }\nshards: { rows: { perShard: 2 } }\n', /workload\.input\.columns: data\.csv has no column 'z' \(it has: id, x, comment, expected\)/],
    ['a missing JSONL key for the reference', 'name: x\nworkload: { kind: onnx, model: model.onnx, data: data.jsonl, input: { columns: [x] }, reference: { column: want } }\nshards: { rows: { perShard: 2 } }\n', /workload\.reference\.column: .* no key 'want'/],
    ['invalid YAML', 'name: [unclosed\n', /bad\.yaml:\d+:\d+: not valid YAML or JSON/],
    ['a non-vendor capability key', 'name: x\nworkload: { kind: module, module: pi.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\nrequires: { capabilities: [cuda] }\n', /requires\.capabilities\.0: capability keys are vendor-qualified/]
  ])('refuses %s, naming the field', async (_what, text, pattern) => {
    expect(await loadError(text)).toMatch(pattern)
  })
})

describe('data set scanning', () => {
  it('hashes each shard\'s bytes in the same pass, across chunk boundaries, quoted newlines and blank lines', async () => {
    const { createHash } = await import('node:crypto')
    const rows = Array.from({ length: 5000 }, (_, i) => i % 97 === 0 ? `${i},"multi\nline, quoted",${'x'.repeat(300)}` : `${i},plain,${'y'.repeat(300)}`)
    const text = `id,note,pad\n${rows.slice(0, 2500).join('\n')}\n\n   \n${rows.slice(2500).join('\r\n')}`
    const file = join(dir.path, 'big.csv')
    await writeFile(file, text)
    const index = await scanDataSet(file, 'csv', 333, undefined)
    expect(index.rows).toBe(5000)
    expect(index.sliceHashes).toHaveLength(index.offsets.length - 1)
    const bytes = Buffer.from(text)
    index.sliceHashes.forEach((h, i) => {
      expect(h, `shard ${i}`).toBe(createHash('sha256').update(bytes.subarray(index.offsets[i], index.offsets[i + 1])).digest('hex'))
    })
    const firstIds = index.offsets.slice(0, -1).map(o => Number(bytes.subarray(o, o + 12).toString().split(',')[0]))
    expect(firstIds).toEqual(Array.from({ length: 16 }, (_, i) => i * 333))
  })

  it('finds each shard\'s bytes so that slicing them gives exactly its rows', async () => {
    const file = join(dir.path, 'data.csv')
    const index = await scanDataSet(file, 'csv', 3)
    const bytes = (await import('node:fs/promises')).readFile(file)
    const text = (await bytes).toString('utf8')
    const slices = index.offsets.slice(0, -1).map((start, i) => text.slice(start, index.offsets[i + 1]).split(/\r?\n/).filter(l => l !== ''))
    expect(slices.map(s => s.length)).toEqual([3, 3, 3, 1])
    expect(slices.flat().map(l => l.split(',')[0])).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
    const jsonl = await scanDataSet(join(dir.path, 'data.jsonl'), 'jsonl', 5)
    expect(jsonl).toMatchObject({ rows: 7, firstKeys: ['x', 'y'] })
    expect(jsonl.offsets).toHaveLength(3)
  })

  it('cuts shards where the worker\'s reader finds rows: quoted newlines, quotes inside plain fields, blank lines, UTF-8', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => {
      const note = i % 7 === 0 ? '"two\nlines, ""quoted"""' : i % 11 === 0 ? 'a 5" pipe' : `température ${i}`
      return `${i},${note},${'p'.repeat(400)}`
    })
    // over 1 MiB, so the scan's reads end mid-row; blank and whitespace-only lines between rows
    const text = `id,note,pad\r\n${rows.slice(0, 1000).join('\r\n')}\n\n \t\n${rows.slice(1000).join('\n')}\n`
    const file = join(dir.path, 'tricky.csv')
    await writeFile(file, text)
    const perShard = 128
    const index = await scanDataSet(file, 'csv', perShard)
    expect(index.rows).toBe(3000)
    expect(index.columns).toEqual(['id', 'note', 'pad'])
    for (let s = 0; s < index.offsets.length - 1; s++) {
      const firstRow = s * perShard
      const reader = openRowReader({ path: file, start: index.offsets[s], end: index.offsets[s + 1] }, { format: 'csv', dataColumns: index.columns, inputColumns: ['id'], firstRow })
      const ids = new Float32Array(perShard + 1)
      const got = await reader.fill(ids, perShard + 1)
      expect(Array.from(ids.subarray(0, got)), `shard ${s}`).toEqual(Array.from({ length: Math.min(perShard, 3000 - firstRow) }, (_, k) => firstRow + k))
    }
  })
})

describe('files a campaign names', () => {
  const SECRET = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n'
  let camp: string
  let outside: string
  beforeAll(async () => {
    camp = join(dir.path, 'camp')
    outside = join(dir.path, 'outside')
    await mkdir(camp)
    await mkdir(outside)
    await writeFile(join(camp, 'model.onnx'), 'model')
    await writeFile(join(camp, 'data.csv'), 'id,x\n1,2\n')
    await writeFile(join(outside, 'outside.mjs'), 'export function run () { return 1 }\n')
    await writeFile(join(outside, 'secret.csv'), SECRET)
    await writeFile(join(outside, 'ref.csv'), 'id,want\n1,2\n')
    await symlink(join(outside, 'secret.csv'), join(camp, 'link.csv'))
  })

  const onnx = (data: string, extra = ''): string => `name: x\nworkload: { kind: onnx, model: model.onnx, data: '${data}', input: { columns: [x] }${extra} }\nshards: { rows: { perShard: 1 } }\n`
  async function refusal (text: string, opts: LoadOptions = {}): Promise<string> {
    const file = join(camp, 'campaign.yaml')
    await writeFile(file, text)
    const err = await loadCampaignFile(file, opts).then(() => undefined, (e: unknown) => e as Error)
    expect(err?.name).toBe('CampaignFileError')
    expect(err!.message).not.toContain('root:x')
    return err!.message
  }

  it.each([
    ['a module outside, through ..', 'name: x\nworkload: { kind: module, module: ../outside/outside.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\n', 'workload.module: ../outside/outside.mjs', 'outside.mjs'],
    ['a data set outside, through ..', onnx('../outside/secret.csv'), 'workload.data: ../outside/secret.csv', 'secret.csv'],
    ['a data set named by an absolute path', onnx('ABS'), 'workload.data: ABS', 'secret.csv'],
    ['a symlink inside pointing outside', onnx('link.csv'), 'workload.data: link.csv', 'secret.csv'],
    ['a missing file that would be outside', onnx('../outside/nothing.csv'), 'workload.data: ../outside/nothing.csv', 'nothing.csv']
  ])('refuses %s before reading it, naming the path, the folder and --data-root', async (_what, text, named, file) => {
    const abs = join(outside, 'secret.csv')
    const message = await refusal(text.replace('ABS', abs))
    expect(message).toContain(named.replace('ABS', abs))
    expect(message).toContain(`resolves to ${await realpath(outside)}/${file}, outside the campaign's folder ${camp}`)
    expect(message).toContain('--data-root')
  })

  it('reads a file outside the campaign\'s folder when it is under a --data-root, through a symlink too', async () => {
    const file = join(camp, 'roots.yaml')
    await writeFile(file, 'name: x\nworkload: { kind: module, module: ../outside/outside.mjs }\nshards: { iterations: { total: 1, perShard: 1, seed: 1 } }\n')
    const loaded = await loadCampaignFile(file, { dataRoots: [outside] })
    expect(loaded.assets).toEqual([{ field: 'workload.module', path: join(await realpath(outside), 'outside.mjs'), name: 'outside.mjs' }])
    const other = join(dir.path, 'elsewhere')
    await mkdir(other)
    expect(await refusal(onnx('link.csv'), { dataRoots: [other] })).toContain(`or this node's --data-root folders (${other})`)
  })

  it('stores nothing for a refused campaign, though its other files are inside', async () => {
    const storeDir = join(dir.path, 'blobs')
    const store = await BlobStore.open(storeDir)
    const withReference = onnx('data.csv', ', reference: { column: want, data: ../outside/ref.csv }')
    await refusal(withReference, { store })
    expect(await readdir(storeDir, { recursive: true })).toEqual(['tmp'])
    // the same campaign, allowed: both data sets are stored
    const file = join(camp, 'campaign.yaml')
    const loaded = await loadCampaignFile(file, { store, dataRoots: [outside] })
    expect(loaded.assets.map(a => a.stored != null)).toEqual([false, true, true])
    expect((await readdir(storeDir, { recursive: true })).length).toBeGreaterThan(1)
  })
})

describe('shard plans', () => {
  it('derive the same shard i with the same seed, whatever else happens', () => {
    const it1 = new ShardPlan({ kind: 'iterations', total: 1000, perShard: 300, seed: 42 })
    expect(it1.count).toBe(4)
    expect(it1.at(3)).toEqual({ kind: 'iterations', index: 3, seed: shardSeed(42, 3), start: 900, end: 1000 })
    expect(new ShardPlan({ kind: 'iterations', total: 1000, perShard: 300, seed: 42 }).at(2)).toEqual(it1.at(2))
    const seeds = new Set(Array.from({ length: 4 }, (_, i) => it1.at(i).seed))
    expect(seeds.size).toBe(4)
    expect(new ShardPlan({ kind: 'iterations', total: 1000, perShard: 300, seed: 43 }).at(0).seed).not.toBe(it1.at(0).seed)
  })

  it('enumerate a grid in a fixed order (names sorted, last varies fastest) without building it', () => {
    const plan = new ShardPlan({ kind: 'grid', parameters: { vol: [0.1, 0.2, 0.3], rate: [0.01, 0.02] }, perShard: 4, seed: 0 })
    expect(plan.count).toBe(2)
    const points = [...plan.at(0).kind === 'grid' ? (plan.at(0) as { points: unknown[] }).points : [], ...(plan.at(1) as { points: unknown[] }).points]
    expect(points).toEqual([
      { rate: 0.01, vol: 0.1 }, { rate: 0.01, vol: 0.2 }, { rate: 0.01, vol: 0.3 },
      { rate: 0.02, vol: 0.1 }, { rate: 0.02, vol: 0.2 }, { rate: 0.02, vol: 0.3 }
    ])
    const huge = new ShardPlan({ kind: 'grid', parameters: { a: Array.from({ length: 1000 }, (_, i) => i), b: Array.from({ length: 1000 }, (_, i) => i) }, perShard: 1, seed: 0 })
    expect(huge.count).toBe(1_000_000)
    expect(huge.at(999_999)).toMatchObject({ points: [{ a: 999, b: 999 }] })
  })
})
