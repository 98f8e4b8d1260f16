import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHash, randomBytes } from 'node:crypto'
import { utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pino } from 'pino'
import type { CampaignRecord } from '../../actors/coordinator/store.ts'
import { BlobGc, collectable, type ReferenceSource } from '../../node/blobs/gc.ts'
import { Intake } from '../../node/blobs/intake.ts'
import { BlobStore, type StoredBlob } from '../../node/blobs/store.ts'
import { recordBlobs } from '../../node/campaign/blob-refs.ts'
import { loadCampaignObject, resolveCampaign } from '../../node/campaign/load.ts'
import { silentLogger } from '../../node/logger.ts'
import { tempDir } from '../helpers.ts'

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')
const H = (n: number): string => sha256(String(n))
const HOUR = 3600_000

let dir: { path: string, remove: () => Promise<void> }
let store: BlobStore
beforeEach(async () => {
  dir = await tempDir('zp-blob-gc-')
  store = await BlobStore.open(join(dir.path, 'blobs'))
})
afterEach(async () => { await dir.remove() })

/** A blob last used `ago` ms before `now`. */
async function putUsed (bytes: Uint8Array, ago: number, now = Date.now()): Promise<string> {
  const { hash } = await store.putBytes(bytes, 'b')
  const at = new Date(now - ago)
  await utimes(store.path(hash), at, at)
  return hash
}

const hashes = async (): Promise<string[]> => {
  const out: string[] = []
  for await (const b of store.list()) out.push(b.hash)
  return out.sort()
}

describe('collectable', () => {
  const now = 1_000_000_000
  const blob = (n: number, lastUsedAt: number): StoredBlob => ({ hash: H(n), size: 10, lastUsedAt })

  it('is what nothing references and nobody used within the retention', () => {
    const blobs = [blob(1, now - 2 * HOUR), blob(2, now - 2 * HOUR), blob(3, now - 30 * 60_000), blob(4, now + 5)]
    expect(collectable(blobs, new Set([H(2)]), now, HOUR)).toEqual([H(1)])
    expect(collectable(blobs, new Set(), now, 3 * HOUR)).toEqual([])
  })

  it('with retention 0, is everything unreferenced that was last used before now', () => {
    const blobs = [blob(1, now - 1), blob(2, now), blob(3, now - HOUR)]
    expect(collectable(blobs, new Set([H(3)]), now, 0)).toEqual([H(1)])
  })
})

describe('the blobs a campaign record keeps', () => {
  async function onnxRecord (endedAt?: number): Promise<CampaignRecord> {
    await writeFile(join(dir.path, 'data.csv'), 'x,want\n1,2\n3,4\n5,6\n')
    await writeFile(join(dir.path, 'ref.csv'), 'want\n2\n4\n6\n')
    await writeFile(join(dir.path, 'model.onnx'), 'not really a model')
    const loaded = await loadCampaignObject({
      name: 'r',
      workload: { kind: 'onnx', model: 'model.onnx', data: 'data.csv', input: { columns: ['x'] }, output: { column: 'y' }, reference: { column: 'want', data: 'ref.csv' } },
      shards: { rows: { perShard: 2 } }
    }, dir.path, {})
    const spec = await resolveCampaign(loaded, async (_path, name) => ({ hash: sha256(name), size: 1, name }))
    return {
      id: 'c-abcdef', spec, specHash: 'x', createdAt: 0, state: endedAt != null ? 'SUCCEEDED' : 'RUNNING', shards: 2, done: 0, deadLetters: [], runDir: '/runs/c-abcdef',
      sliceHashes: loaded.data!.sliceHashes, ...(endedAt != null ? { endedAt } : {})
    }
  }

  it('are its model, data sets and slices until the retention after it ended has passed', async () => {
    const now = Date.now()
    const running = await onnxRecord()
    const files = [sha256('model.onnx'), sha256('data.csv'), sha256('ref.csv')]
    expect(running.sliceHashes).toHaveLength(2)
    expect(recordBlobs(running, { now, retentionMs: 0 })).toEqual([...files, ...running.sliceHashes!])
    const ended = await onnxRecord(now - 2 * HOUR)
    expect(recordBlobs(ended, { now, retentionMs: 3 * HOUR })).toEqual([...files, ...ended.sliceHashes!])
    expect(recordBlobs(ended, { now, retentionMs: HOUR })).toEqual([])
    expect(recordBlobs(ended, { now, retentionMs: 0 })).toEqual([])
  })
})

describe('BlobGc', () => {
  const gcOf = (retentionMs: number, sources: ReferenceSource[] = [], log = silentLogger()): BlobGc => new BlobGc({ store, retentionMs, sources, log })

  it('removes the unreferenced blobs unused for the retention, keeps the rest, and keeps the store\'s count true', async () => {
    await putUsed(randomBytes(100), 2 * HOUR) // nothing names it, unused for two hours: it goes
    const named = await putUsed(randomBytes(200), 2 * HOUR)
    const recent = await putUsed(randomBytes(300), 10 * 60_000)
    const held = await putUsed(randomBytes(400), 2 * HOUR)
    const gc = gcOf(HOUR, [{ why: 'a campaign', hashes: async function * () { yield named } }])
    const release = gc.hold([held])
    expect(store.usage()).toEqual({ blobs: 4, bytes: 1000 })

    const dry = await gc.run({ dryRun: true })
    expect(dry).toEqual({ dryRun: true, retentionMs: HOUR, removed: { blobs: 1, bytes: 100 }, kept: { blobs: 3, bytes: 900 } })
    expect(await hashes()).toHaveLength(4)

    expect(await gc.run()).toEqual({ dryRun: false, retentionMs: HOUR, removed: { blobs: 1, bytes: 100 }, kept: { blobs: 3, bytes: 900 } })
    expect(await hashes()).toEqual([named, recent, held].sort())
    expect(store.usage()).toEqual({ blobs: 3, bytes: 900 })

    release()
    release()
    expect((await gc.run()).removed).toEqual({ blobs: 1, bytes: 400 })
    expect(await hashes()).toEqual([named, recent].sort())
    expect((await gcOf(0).run()).removed).toEqual({ blobs: 2, bytes: 500 })
    expect(store.usage()).toEqual({ blobs: 0, bytes: 0 })
  })

  it('keeps a blob used again after it was listed, and a blob a source added later names', async () => {
    const hash = await putUsed(randomBytes(10), 2 * HOUR)
    const gc = gcOf(0, [{
      why: 'touched while the collector reads its references',
      hashes: async function * () { await store.touch(hash) }
    }])
    expect((await gc.run()).removed.blobs).toBe(0)
    expect(await hashes()).toEqual([hash])
    const later = gcOf(0)
    later.addSource({ why: 'a model registry', hashes: () => [hash] })
    expect((await later.run()).removed.blobs).toBe(0)
  })

  it('logs what it removed, and with debug why it kept each blob', async () => {
    const lines: Array<Record<string, unknown>> = []
    const log = pino({ level: 'debug' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    const gone = await putUsed(randomBytes(50), 2 * HOUR)
    const named = await putUsed(randomBytes(60), 2 * HOUR)
    const recent = await putUsed(randomBytes(70), 60_000)
    await gcOf(HOUR, [{ why: 'named by a running campaign', hashes: () => [named] }], log).run()
    expect(lines.find(l => l.removed === 1)).toMatchObject({ level: 30, removedBytes: 50, kept: 2, keptBytes: 130, msg: 'blob gc removed 1 blob (50 bytes)' })
    const kept = Object.fromEntries(lines.filter(l => l.msg === 'blob gc kept a blob').map(l => [l.blob, l.why]))
    expect(kept).toEqual({ [named]: 'named by a running campaign', [recent]: expect.stringMatching(/^nothing references it, but it was used 60 s ago, within the retention \(3600 s\)$/) })
    expect(kept[gone]).toBeUndefined()
  })
})

describe('a submit\'s intake', () => {
  const gcOf = (sources: ReferenceSource[] = []): BlobGc => new BlobGc({ store, retentionMs: HOUR, sources, log: silentLogger() })
  const fileOf = async (name: string, bytes: Uint8Array): Promise<string> => {
    const path = join(dir.path, name)
    await writeFile(path, bytes)
    return path
  }

  it('discarded, removes the blobs it added, and only those', async () => {
    const before = await putUsed(randomBytes(30), 0)
    const gc = gcOf()
    const intake = new Intake(store, gc)
    await intake.putFile(await fileOf('model.onnx', randomBytes(40)), 'model.onnx')
    const already = await intake.putFile(await fileOf('same.bin', await store.readRange(before, 0, 30)), 'same.bin')
    expect(already.hash).toBe(before)
    const writer = await intake.createWriter({ name: 'data.csv' })
    await writer.write([randomBytes(50)])
    await writer.finish()
    await writer.commit()
    expect(store.usage()).toEqual({ blobs: 3, bytes: 120 })
    expect(await intake.discard()).toEqual({ blobs: 2, bytes: 90 })
    expect(await hashes()).toEqual([before])
    expect(store.usage()).toEqual({ blobs: 1, bytes: 30 })
  })

  it('holds what it stored from the collector until released, even at retention 0', async () => {
    const gc = new BlobGc({ store, retentionMs: 0, log: silentLogger() })
    const intake = new Intake(store, gc)
    const ref = await intake.putFile(await fileOf('m.mjs', randomBytes(10)), 'm.mjs')
    await utimes(store.path(ref.hash), new Date(0), new Date(0))
    expect((await gc.run()).removed.blobs).toBe(0)
    intake.release()
    expect((await gc.run()).removed.blobs).toBe(1)
  })

  it('discarded, keeps what another submit of the same file holds, or a campaign names', async () => {
    const bytes = randomBytes(64)
    const named = randomBytes(65)
    const gc = gcOf([{ why: 'a campaign', hashes: () => [sha256(named)] }])
    const refused = new Intake(store, gc)
    const other = new Intake(store, gc)
    await refused.putFile(await fileOf('a.bin', bytes), 'a.bin')
    await other.putFile(await fileOf('b.bin', bytes), 'b.bin')
    await refused.putFile(await fileOf('n.bin', named), 'n.bin')
    expect(await refused.discard()).toEqual({ blobs: 0, bytes: 0 })
    expect(await hashes()).toEqual([sha256(bytes), sha256(named)].sort())
    other.release()
  })
})
