import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { buildOnnxExample, FEATURES, type OnnxExample } from '../../examples/onnx-batch/build.ts'
import { loadCampaignFile } from '../../node/campaign/load.ts'
import { dataPaths } from '../../node/datadir.ts'
import type { ZpNode } from '../../node/node.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { exported, finished, SQUARES } from './campaigns.ts'
import { createMesh, fakeCapabilities, waitForPeers, type Mesh } from './harness.ts'

const HOUR = 3600_000
const ROWS = 6000

let scratch: { path: string, remove: () => Promise<void> }
let onnx: OnnxExample
beforeAll(async () => {
  scratch = await tempDir('zp-blob-gc-mesh-')
  onnx = await buildOnnxExample({ dir: scratch.path, rows: ROWS, hidden: 16 })
})
afterAll(async () => { await scratch.remove() })

let mesh: Mesh | undefined
afterEach(async () => {
  await mesh?.stop()
  mesh = undefined
})

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** An onnx campaign over the example's model and data; `columns` replaces its input columns. */
async function campaign (name: string, opts: { perShard?: number, columns?: string[] } = {}): Promise<string> {
  const file = join(scratch.path, `${name}.json`)
  await writeFile(file, JSON.stringify({
    name,
    workload: {
      kind: 'onnx',
      model: onnx.model,
      data: onnx.data,
      input: { name: 'features', columns: opts.columns ?? Array.from({ length: FEATURES }, (_, i) => `f${i}`) },
      output: { name: 'prediction', column: 'prediction' },
      batchSize: 64,
      reference: { column: 'expected', tolerance: 1e-4 }
    },
    shards: { rows: { perShard: opts.perShard ?? 50 } }
  }))
  return file
}

async function held (node: ZpNode): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const blob of node.blobs.store.list()) out.add(blob.hash)
  return out
}

describe('the blob gc on a mesh running a campaign', () => {
  it('removes nothing a running campaign needs; once it ended, its blobs go at retention 0 and stay with a long one, and its results remain', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a', slots: 1, blobRetentionMs: 0 })
    const b = await mesh.start({ name: 'b', slots: 1, blobRetentionMs: 0, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    const c = await mesh.start({ name: 'c', slots: 1, blobRetentionMs: HOUR, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
    await waitForPeers(a, [b, c])
    const nodes = [a, b, c]
    const file = await campaign('gc-while-running')
    const loaded = await loadCampaignFile(file)
    const itsBlobs = new Set([sha256(await readFile(onnx.model)), sha256(await readFile(onnx.data)), ...loaded.data!.sliceHashes])

    const s = await a.campaigns.submit({ file })
    // collect on every node, again and again, while the campaign runs: nothing of it may go
    let roundsWhileRunning = 0
    for (;;) {
      const had = await Promise.all(nodes.map(async n => [...await held(n)].filter(h => itsBlobs.has(h))))
      await Promise.all(nodes.map(async n => await n.gc.run()))
      const after = await Promise.all(nodes.map(held))
      // a round during which the campaign's last shard finished may take its blobs: it is ending, nothing needs them
      const st = (await a.campaigns.status(s.id))!
      if ((st.state !== 'RUNNING' && st.state !== 'QUEUED') || st.shards.done === st.shards.total) break
      if (st.state === 'RUNNING') roundsWhileRunning++
      for (const [i, n] of nodes.entries()) {
        expect(had[i]!.filter(h => !after[i]!.has(h)), `blobs of the running campaign removed from ${n.name}`).toEqual([])
      }
    }
    expect(roundsWhileRunning).toBeGreaterThan(2)
    const done = await finished(a, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: ROWS / 50, done: ROWS / 50, failed: 0 } })
    expect(done.workers.map(w => w.name).sort()).toEqual(['a', 'b', 'c'])
    const correctness = JSON.parse(await readFile(join(done.runDir, 'correctness.json'), 'utf8')) as { matchRate: number, compared: number }
    expect(correctness).toMatchObject({ matchRate: 1, compared: ROWS })
    const rows = await exported(a, s.id)

    // ended: at retention 0 (a coordinates it, b holds a replica) every blob of it goes, once the workers are idle
    for (const n of [a, b]) {
      await waitFor(async () => {
        await n.gc.run()
        return [...await held(n)].every(h => !itsBlobs.has(h))
      }, { what: `${n.name}'s blobs of the ended campaign to go` })
      expect(n.info().blobStore).toEqual(n.blobs.store.usage())
      expect(n.blobs.store.usage().blobs).toBe((await held(n)).size)
    }
    // c keeps its for the hour, whatever runs
    const cHad = [...await held(c)].filter(h => itsBlobs.has(h))
    expect(cHad.length).toBeGreaterThan(1)
    await c.gc.run()
    expect([...await held(c)].filter(h => itsBlobs.has(h))).toEqual(cHad)
    // the results are in LevelDB, not in blobs: the export is the same, from the coordinator and from a replica
    expect(rows.trim().split('\n')).toHaveLength(ROWS)
    expect(await exported(a, s.id)).toBe(rows)
    expect(await exported(b, s.id)).toBe(rows)
  })
})

describe('the blob gc on a worker', () => {
  it('keeps the files of the shard it runs for another node\'s campaign, even at retention 0; they go once it is idle', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const b = await mesh.start({ name: 'b', slots: 1, blobRetentionMs: 0, bootstrap: [multiaddr(a.multiaddrs()[0]!)], probe: fakeCapabilities({ 'test.role.worker': { status: 'ok' } }) })
    await waitForPeers(a, [b])
    const file = join(scratch.path, 'elsewhere.json')
    // no replicas: nothing on b names the campaign, only the shard it runs
    await writeFile(file, JSON.stringify({
      name: 'elsewhere',
      workload: { kind: 'module', module: SQUARES },
      // one shard of about 1.5 s: b is busy with it from its fetch of the module to its end
      shards: { iterations: { total: 5, perShard: 5, seed: 1 } },
      params: { slowMs: 300 },
      replicas: 0,
      requires: { capabilities: ['test.role.worker'] }
    }))
    const module = sha256(await readFile(SQUARES))
    const s = await a.campaigns.submit({ file })
    const busy = (): boolean => b.slots().free === 0
    await waitFor(async () => busy() && await b.blobs.store.has(module), { what: 'b to run the shard' })
    let roundsWhileBusy = 0
    for (;;) {
      await b.gc.run()
      if (!busy()) break
      roundsWhileBusy++
      expect(await b.blobs.store.has(module), 'b\'s copy of the module of the shard it runs').toBe(true)
    }
    expect(roundsWhileBusy).toBeGreaterThan(2)
    expect(await finished(a, s.id)).toMatchObject({ state: 'SUCCEEDED', shards: { done: 1 } })
    await waitFor(async () => {
      await b.gc.run()
      return !await b.blobs.store.has(module)
    }, { what: 'b\'s copy of the module to go once b is idle' })
  })
})

describe('a refused submit', () => {
  it('leaves the blob store as it was: refused by the campaign file\'s checks, or by the coordinator', async () => {
    mesh = await createMesh()
    const n = await mesh.start({ name: 'solo' })
    // the model is in the store already (another campaign used it): a refusal must not take it
    const model = await n.blobs.store.putFile(onnx.model, 'model.onnx')
    const before = await held(n)
    const usage = n.blobs.store.usage()
    expect(before).toEqual(new Set([model.hash]))

    // the data set is copied into the store while it is scanned, before its columns are checked
    const badColumn = await campaign('bad-column', { columns: ['f0', 'nope'] })
    await expect(n.campaigns.submit({ file: badColumn })).rejects.toMatchObject({
      name: 'CampaignFileError', message: expect.stringContaining("workload.input.columns: " + onnx.data + " has no column 'nope'")
    })
    expect(await held(n)).toEqual(before)
    expect(n.blobs.store.usage()).toEqual(usage)

    // every file is stored, then the coordinator cannot start it (its run folder cannot be made)
    const runs = dataPaths(n.dataDir).runs
    await rm(runs, { recursive: true, force: true })
    await writeFile(runs, 'not a folder')
    await expect(n.campaigns.submit({ file: await campaign('no-run-folder') })).rejects.toMatchObject({ name: 'UnavailableError', message: expect.stringMatching(/^cannot start campaign no-run-folder/) })
    expect(await held(n)).toEqual(before)
    expect(n.blobs.store.usage()).toEqual(usage)
  })
})
