import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  commitShardOutput, detachedPaths, finishedShards, ManifestError, readManifest, readShardEntry, readShardError,
  readShardOutput, removeDetachedDir, writeManifest, writeShardError, writeShards
} from '../../bootstrap/slurm/manifest.ts'
import { planCampaign, writeDetached, type PlannedCampaign } from '../fixtures/detached.ts'
import { tempDir } from '../helpers.ts'

let scratch: { path: string, remove: () => Promise<void> }
let module: PlannedCampaign
let onnx: PlannedCampaign
/** a store on another file system (tmpfs), where one exists: its blobs must be copied, not linked */
let elsewhere: string | undefined

const moduleHash = (p: PlannedCampaign): string => p.spec.workload.kind === 'module' ? p.spec.workload.module.hash : ''

async function caught (work: Promise<unknown>): Promise<ManifestError> {
  const err = await work.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ManifestError)
  return err as ManifestError
}

beforeAll(async () => {
  scratch = await tempDir('zp-detached-')
  const src = join(scratch.path, 'src')
  await mkdir(src)
  await writeFile(join(src, 'sim.mjs'), 'export function run (shard) { return { i: shard.index } }\n')
  await writeFile(join(src, 'model.onnx'), 'not opened by the loader')
  await writeFile(join(src, 'data.csv'), 'a,b\n' + Array.from({ length: 10 }, (_, i) => `${i},${i * 2}`).join('\n') + '\n')
  await writeFile(join(src, 'ref.csv'), 'y\n' + Array.from({ length: 10 }, (_, i) => `${i * 3}`).join('\n') + '\n')
  module = await planCampaign({
    name: 'sim', workload: { kind: 'module', module: './sim.mjs' }, shards: { iterations: { total: 10, perShard: 4, seed: 7 } }, params: { k: 1 }
  }, src, join(scratch.path, 'store'))
  if ((await stat('/dev/shm').catch(() => undefined))?.dev !== (await stat(tmpdir())).dev) {
    elsewhere = await mkdtemp('/dev/shm/zp-detached-store-').catch(() => undefined)
  }
  onnx = await planCampaign({
    name: 'infer',
    workload: { kind: 'onnx', model: './model.onnx', data: './data.csv', input: { columns: ['a', 'b'] }, output: { column: 'y' }, batchSize: 4, reference: { column: 'y', tolerance: 0, data: './ref.csv' } },
    shards: { rows: { perShard: 3 } }
  }, src, elsewhere ?? join(scratch.path, 'store'))
})
afterAll(async () => {
  await scratch?.remove()
  if (elsewhere != null) await rm(elsewhere, { recursive: true, force: true })
})

describe('the detached manifest', () => {
  it('round-trips the manifest and the shard entries; a module blob is a hard link named .mjs', async () => {
    const dir = join(scratch.path, 'module')
    await writeDetached(dir, 'c-1', module)
    const hash = moduleHash(module)
    expect(await readManifest(dir)).toEqual({
      version: 1, campaignId: 'c-1', name: 'sim', workload: module.spec.workload, params: { k: 1 }, shardTimeoutMs: module.spec.shardTimeoutMs, blobs: { [hash]: `blobs/${hash}.mjs` }
    })
    const placed = join(dir, 'blobs', `${hash}.mjs`)
    expect((await stat(placed)).ino).toBe((await stat(module.blobPath(hash))).ino)
    expect(module.shards.map(s => s.index)).toEqual([0, 1, 2])
    for (const shard of module.shards) expect(await readShardEntry(dir, shard.index)).toEqual({ shard, attempt: 1 })
    // a resubmission rewrites the entry with its attempt and the checkpoint to resume from
    await writeShards(dir, [{ shard: module.shards[1]!, attempt: 2, resumeFrom: { step: 9, sum: [1, 2] } }])
    expect(await readShardEntry(dir, 1)).toEqual({ shard: module.shards[1], attempt: 2, resumeFrom: { step: 9, sum: [1, 2] } })
    // writing the manifest again (a coordinator that restarted) keeps what is there
    await writeDetached(dir, 'c-1', module)
    expect((await readdir(join(dir, 'blobs')))).toEqual([`${hash}.mjs`])
  })

  it('places the model, the data set and the reference data, copied from another file system', async () => {
    const dir = join(scratch.path, 'onnx')
    await writeDetached(dir, 'c-2', onnx)
    const w = onnx.spec.workload
    if (w.kind !== 'onnx') throw new Error('expected an onnx spec')
    const hashes = [w.model.hash, w.data.blob.hash, w.reference!.data!.blob.hash]
    const manifest = await readManifest(dir)
    expect(manifest.blobs).toEqual(Object.fromEntries(hashes.map(h => [h, `blobs/${h}`])))
    for (const h of hashes) {
      expect(await readFile(join(dir, manifest.blobs[h]!))).toEqual(await readFile(onnx.blobPath(h)))
      if (elsewhere != null) expect((await stat(join(dir, manifest.blobs[h]!))).ino).not.toBe((await stat(onnx.blobPath(h))).ino)
    }
    const rows = onnx.shards[1]!
    expect(await readShardEntry(dir, 1)).toEqual({ shard: rows, attempt: 1 })
    expect(rows).toMatchObject({ kind: 'rows', start: 3, end: 6, sliceHash: expect.stringMatching(/^[0-9a-f]{64}$/) })
  })

  it('counts a shard finished only once its out file is renamed into place', async () => {
    const dir = join(scratch.path, 'commit')
    await writeDetached(dir, 'c-3', module)
    const paths = detachedPaths(dir)
    // what a run killed halfway leaves: the meta file and the rows under a temp name
    await writeFile(paths.meta(2), JSON.stringify({ attempt: 1, durationMs: 5, host: 'n1', rows: 2 }))
    await writeFile(join(paths.out, '.shard-2.jsonl.tmp-0a1b2c'), '{"i":2}\n{"i"')
    expect(await finishedShards(dir)).toEqual([])
    expect(await readShardOutput(dir, 2)).toBeUndefined()

    await commitShardOutput(dir, 2, { rows: [{ i: 2 }, [1, 'x'], null], info: { executionProvider: 'cpu' } }, { attempt: 1, durationMs: 12.5, host: 'n2' })
    await commitShardOutput(dir, 0, { rows: [] }, { attempt: 3, durationMs: 1, host: 'n3' })
    expect(await finishedShards(dir)).toEqual([0, 2])
    expect(await readFile(paths.output(2), 'utf8')).toBe('{"i":2}\n[1,"x"]\nnull\n')
    expect(await readShardOutput(dir, 2)).toEqual({
      output: { rows: [{ i: 2 }, [1, 'x'], null], info: { executionProvider: 'cpu' } },
      meta: { attempt: 1, durationMs: 12.5, host: 'n2', rows: 3, info: { executionProvider: 'cpu' } }
    })
    expect(await readShardOutput(dir, 0)).toEqual({ output: { rows: [] }, meta: { attempt: 3, durationMs: 1, host: 'n3', rows: 0 } })
    // the commit leaves no temp file of its own
    expect((await readdir(paths.out)).filter(n => n.includes('.tmp-') && !n.includes('0a1b2c'))).toEqual([])

    expect(await readShardError(dir, 1, 1)).toBeUndefined()
    await writeShardError(dir, 1, 2, { error: 'simulation diverged', retryable: false })
    expect(await readShardError(dir, 1, 2)).toEqual({ error: 'simulation diverged', retryable: false })
    expect(await readShardError(dir, 1, 1)).toBeUndefined()
  })

  it('refuses a folder it cannot write, saying which and what to pass instead', async () => {
    const file = join(scratch.path, 'a-file')
    await writeFile(file, 'not a folder')
    const err = await caught(writeDetached(join(file, 'campaign'), 'c-4', module))
    expect(err.code).toBe('unwritable')
    expect(err.message).toContain(join(file, 'campaign'))
    expect(err.message).toContain('ENOTDIR')
    expect(err.message).toContain('pass --shared-dir DIR that this node and the compute nodes can write')

    const missing = await caught(writeManifest(join(scratch.path, 'no-blob'), { campaignId: 'c-5', spec: module.spec, blobPath: (h) => join(scratch.path, 'nowhere', h) }))
    expect(missing.code).toBe('missing')
    expect(missing.message).toContain(`blob ${moduleHash(module)} (sim.mjs)`)
  })

  it('says which file is missing or garbled', async () => {
    const dir = join(scratch.path, 'garbled')
    const absent = await caught(readManifest(dir))
    expect(absent.code).toBe('missing')
    expect(absent.message).toContain(join(dir, 'manifest.json'))

    await writeDetached(dir, 'c-6', module)
    const paths = detachedPaths(dir)
    const manifest = await readFile(paths.manifest, 'utf8')
    await writeFile(paths.manifest, manifest.slice(0, 40))
    expect((await caught(readManifest(dir))).message).toMatch(new RegExp(`^${paths.manifest} is not valid JSON`))
    await writeFile(paths.manifest, manifest.replace('"version":1', '"version":2'))
    expect((await caught(readManifest(dir))).message).toContain('is manifest version 2; this zp-node reads version 1')
    await writeFile(paths.manifest, manifest.replace('"shardTimeoutMs":', '"shardTimeout":'))
    expect((await caught(readManifest(dir))).message).toContain('shardTimeoutMs')

    await writeFile(paths.entry(1), JSON.stringify({ shard: { ...module.shards[0] }, attempt: 1 }))
    expect((await caught(readShardEntry(dir, 1))).message).toBe(`${paths.entry(1)} holds shard 0, not 1`)
    expect((await caught(readShardEntry(dir, 7))).code).toBe('missing')

    await commitShardOutput(dir, 1, { rows: [{ a: 1 }, { a: 2 }] }, { attempt: 1, durationMs: 1, host: 'h' })
    await writeFile(paths.output(1), '{"a":1}\n{"a":2')
    expect((await caught(readShardOutput(dir, 1))).message).toContain('cut short')
    await writeFile(paths.output(1), '{"a":1}\n')
    expect((await caught(readShardOutput(dir, 1))).message).toBe(`${paths.output(1)} has 1 rows but its meta file says 2: one of them was cut short or replaced`)
    await writeFile(paths.output(1), '{"a":1}\n{"a":\n')
    expect((await caught(readShardOutput(dir, 1))).message).toMatch(new RegExp(`^${paths.output(1)}:2: not JSON`))
    await rm(paths.meta(1))
    expect((await caught(readShardOutput(dir, 1))).message).toContain('committed without its meta file')
    await writeFile(paths.error(1, 1), '{"error":"x"}')
    expect((await caught(readShardError(dir, 1, 1))).message).toContain(`${paths.error(1, 1)} is not what zp writes there: retryable`)
  })

  it('removes a detached folder, and nothing that is not one', async () => {
    const dir = join(scratch.path, 'remove')
    await writeDetached(dir, 'c-7', module)
    await removeDetachedDir(dir)
    expect(await stat(dir).catch(() => undefined)).toBeUndefined()
    await removeDetachedDir(dir)

    const other = join(scratch.path, 'someone-elses')
    await mkdir(join(other, 'out'), { recursive: true })
    await writeFile(join(other, 'thesis.tex'), '...')
    expect((await caught(removeDetachedDir(other))).message).toContain('is not a detached campaign folder')
    expect((await readdir(other)).sort()).toEqual(['out', 'thesis.tex'])
  })
})
