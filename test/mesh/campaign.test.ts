import { afterEach, describe, expect, it } from 'vitest'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { multiaddr } from '@multiformats/multiaddr'
import type { ZpNode } from '../../node/node.ts'
import { waitFor } from '../helpers.ts'
import { campaignFiles, exported, finished } from './campaigns.ts'
import { createMesh, fakeCapabilities, waitForPeers, type Mesh } from './harness.ts'


let mesh: Mesh | undefined
const files = campaignFiles('zp-cf-')
const campaignFile = files.write
afterEach(async () => {
  await mesh?.stop()
  await files.remove()
  mesh = undefined
})

async function threeNodes (): Promise<ZpNode[]> {
  mesh = await createMesh()
  const a = await mesh.start({ name: 'a', slots: 2 })
  const b = await mesh.start({ name: 'b', slots: 2, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
  const c = await mesh.start({ name: 'c', slots: 2, bootstrap: [multiaddr(a.multiaddrs()[0]!)] })
  await waitForPeers(a, [b, c])
  return [a, b, c]
}

describe('campaigns on an in-process mesh', () => {
  it('spreads a module campaign over three nodes and exports the rows in shard order', async () => {
    const [a] = await threeNodes()
    const file = await campaignFile('squares', { shards: { iterations: { total: 300, perShard: 10, seed: 7 } } })
    const submitted = await a!.campaigns.submit({ file })
    expect(submitted.state === 'QUEUED' || submitted.state === 'RUNNING').toBe(true)
    const done = await finished(a!, submitted.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { total: 30, done: 30, failed: 0 } })
    expect(done.workers.map(w => w.name).sort()).toEqual(['a', 'b', 'c'])
    const lines = (await exported(a!, submitted.id, 'jsonl')).trim().split('\n').map(l => JSON.parse(l) as { shard: number, item: number, square: number })
    expect(lines).toHaveLength(300)
    expect(lines.map(l => l.item)).toEqual(Array.from({ length: 300 }, (_, i) => i))
    expect(lines.every(l => l.square === l.item * l.item && l.shard === Math.floor(l.item / 10))).toBe(true)
    const summary = await a!.campaigns.summary(submitted.id)
    expect(summary).toMatch(/SUCCEEDED\*\*: 30 of 30 shards done, 0 failed/)
  })
})

describe('any node, any coordinator', () => {
  it('status, results, summary and audit work on a node that neither coordinates the campaign nor holds a replica of it', async () => {
    const [a, b] = await threeNodes()
    // no replicas: b holds nothing of it, so its answers come from a
    const file = await campaignFile('elsewhere', { replicas: 0, shards: { iterations: { total: 120, perShard: 10, seed: 3 } } })
    const s = await a!.campaigns.submit({ file })
    await finished(a!, s.id)
    // the end is reported once the summary is written: it is there at once, on the coordinator and from b
    const summary = await a!.campaigns.summary(s.id)
    expect(summary).toMatch(/\*\*SUCCEEDED\*\*: 12 of 12 shards done/)
    expect(await b!.campaigns.summary(s.id)).toBe(summary)
    expect(await b!.campaigns.auditVerify(s.id)).toMatchObject({ ok: true, from: a!.peerId })
    expect((await b!.campaigns.auditVerify(s.id))!.records).toBe((await a!.campaigns.auditVerify(s.id))!.records)
    // one metrics line per change: the last two lines differ
    const metrics = (await readFile(join(s.runDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map(l => { const { t: _, ...rest } = JSON.parse(l) as Record<string, unknown>; return JSON.stringify(rest) })
    expect(metrics.filter((m, i) => i > 0 && m === metrics[i - 1])).toEqual([])
    expect(metrics.at(-1)).toContain('"state":"SUCCEEDED"')
    expect(await b!.campaigns.status(s.id)).toMatchObject({ id: s.id, state: 'SUCCEEDED', coordinator: a!.peerId, shards: { done: 12 } })
    const blobsOfB = async (): Promise<string[]> => (await readdir(b!.blobs.store.dir, { recursive: true, withFileTypes: true }))
      .filter(e => e.isFile()).map(e => join(e.parentPath, e.name)).sort()
    const before = await blobsOfB()
    for (const format of ['jsonl', 'csv'] as const) {
      const there = await exported(a!, s.id, format)
      expect(there.trim().split('\n').length).toBe(format === 'csv' ? 121 : 120)
      expect(await exported(b!, s.id, format)).toBe(there)
    }
    // the fetched exports were read out and removed, not kept in b's blob store
    expect(await blobsOfB()).toEqual(before)
    expect(await b!.campaigns.results('c-nosuchcampaign', 'jsonl')).toBeNull()
  })

  it('a campaign submitted on a node its peers do not trust runs there alone, and its status names the peers that refused', async () => {
    // b and c joined through a: they trust a, not each other
    const [a, b, c] = await threeNodes()
    const file = await campaignFile('untrusted', { shards: { iterations: { total: 200, perShard: 10, seed: 5 } }, params: { slowMs: 20 } })
    const s = await b!.campaigns.submit({ file })
    const refused = await waitFor(async () => {
      const st = await b!.campaigns.status(s.id)
      return (st?.refusedBy ?? []).length >= 2 ? st : undefined
    }, { timeoutMs: 30_000, what: 'a and c to refuse b\'s shards and replicas' })
    expect(refused.refusedBy!.slice().sort()).toEqual([a!.peerId, c!.peerId].sort())
    const done = await finished(b!, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 20 }, replicas: [] })
    expect(done.workers.map(w => w.name)).toEqual(['b'])
  })
})

describe('campaign semantics', () => {
  it('exports byte-identical results on one node and on three', async () => {
    const file = await campaignFile('identical', { shards: { grid: { parameters: { x: [1, 2, 3, 4, 5], y: ['a', 'b', 'c'] }, perShard: 2, seed: 3 } } })
    const one = await createMesh()
    let single: { jsonl: string, csv: string }
    try {
      const solo = await one.start({ name: 'solo', slots: 1 })
      const s = await solo.campaigns.submit({ file })
      expect((await finished(solo, s.id)).state).toBe('SUCCEEDED')
      single = { jsonl: await exported(solo, s.id, 'jsonl'), csv: await exported(solo, s.id, 'csv') }
    } finally {
      await one.stop()
    }
    const [a] = await threeNodes()
    const s3 = await a!.campaigns.submit({ file })
    expect((await finished(a!, s3.id)).workers.length).toBeGreaterThan(1)
    expect(await exported(a!, s3.id, 'jsonl')).toBe(single.jsonl)
    expect(await exported(a!, s3.id, 'csv')).toBe(single.csv)
    expect(single.csv.split('\n')[0]).toBe('shard,item,square,draw')
  })

  it('keeps a campaign nobody can run QUEUED, saying why, and runs it once a capable peer joins', async () => {
    const [a] = await threeNodes()
    const file = await campaignFile('needs-fpga', {
      shards: { iterations: { total: 4, perShard: 2, seed: 1 } },
      requires: { capabilities: ['fpga.acme.u250'] }
    })
    const s = await a!.campaigns.submit({ file })
    const queued = await waitFor(async () => {
      const st = await a!.campaigns.status(s.id)
      return st?.waiting != null ? st : undefined
    }, { what: 'a waiting reason' })
    expect(queued.state).toBe('QUEUED')
    expect(queued.waiting).toMatch(/no peer meets the requirements \(fpga\.acme\.u250\): .*a lacks fpga\.acme\.u250/)
    await mesh!.start({ name: 'fpga-box', bootstrap: [multiaddr(a!.multiaddrs()[0]!)], probe: fakeCapabilities({ 'fpga.acme.u250': { status: 'ok' } }) })
    const done = await finished(a!, s.id)
    expect(done.state).toBe('SUCCEEDED')
    expect(done.workers.map(w => w.name)).toEqual(['fpga-box'])
  })

  it('retries a failing shard with backoff, then dead-letters it while the rest finish', async () => {
    const [a] = await threeNodes()
    const file = await campaignFile('cursed', {
      shards: { iterations: { total: 100, perShard: 10, seed: 5 } },
      params: { failShard: 4 },
      retry: { maxAttempts: 3, initialDelay: '50ms', backoffFactor: 2 }
    })
    const s = await a!.campaigns.submit({ file })
    const done = await finished(a!, s.id)
    expect(done).toMatchObject({ state: 'FAILED', shards: { done: 9, failed: 1 } })
    expect(done.deadLetters).toEqual([{ index: 4, attempts: 3, error: expect.stringContaining('shard 4 is cursed') }])
    // the rows of a campaign that did not succeed are partial: an error unless asked for as such
    await expect(exported(a!, s.id, 'jsonl')).rejects.toMatchObject({ name: 'NotEndedError', message: expect.stringContaining('FAILED') })
    const items = (await exported(a!, s.id, 'jsonl', { partial: true })).trim().split('\n').map(l => (JSON.parse(l) as { shard: number }).shard)
    expect(new Set(items)).toEqual(new Set([0, 1, 2, 3, 5, 6, 7, 8, 9]))
    expect(await a!.campaigns.summary(s.id)).toMatch(/## Failures \(1 dead-lettered shards\)[\s\S]*\| 4 \| 3 \| .*shard 4 is cursed/)
  })

  it('dead-letters a non-retryable failure at once', async () => {
    const [a] = await threeNodes()
    const file = await campaignFile('bad-input', {
      shards: { iterations: { total: 30, perShard: 10, seed: 5 } },
      params: { failShard: 1, failForGood: true }
    })
    const s = await a!.campaigns.submit({ file })
    const done = await finished(a!, s.id)
    expect(done.deadLetters).toEqual([{ index: 1, attempts: 1, error: expect.stringContaining('cursed') }])
  })

  it('cancel stops leasing, aborts running shards and keeps what finished', async () => {
    const [a, b, c] = await threeNodes()
    const file = await campaignFile('long', { shards: { iterations: { total: 400, perShard: 10, seed: 2 } }, params: { slowMs: 20 } })
    const s = await a!.campaigns.submit({ file })
    await waitFor(async () => ((await a!.campaigns.status(s.id))?.shards.done ?? 0) >= 3, { what: 'a few shards done' })
    const cancelled = await a!.campaigns.cancel(s.id)
    expect(cancelled?.state).toBe('CANCELLED')
    const kept = cancelled!.shards.done
    expect(kept).toBeGreaterThanOrEqual(3)
    expect(kept).toBeLessThan(40)
    // the workers stop: no slot stays busy
    for (const n of [a!, b!, c!]) await waitFor(() => n.slots().free === n.slots().total, { what: `${n.name} to free its slots` })
    const rows = (await exported(a!, s.id, 'jsonl', { partial: true })).trim().split('\n').filter(l => l !== '')
    const final = await a!.campaigns.status(s.id)
    expect(final?.state).toBe('CANCELLED')
    expect(rows.length).toBe(final!.shards.done * 10)
  })
})

describe('priorities', () => {
  it('serves a HIGH campaign before a LOW one submitted earlier', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'solo', slots: 1 })
    const low = await a.campaigns.submit({ file: await campaignFile('low', { shards: { iterations: { total: 40, perShard: 2, seed: 1 } }, params: { slowMs: 25 }, priority: 'LOW' }) })
    await waitFor(async () => ((await a.campaigns.status(low.id))?.shards.done ?? 0) >= 1, { what: 'the LOW campaign to start' })
    const high = await a.campaigns.submit({ file: await campaignFile('high', { shards: { iterations: { total: 10, perShard: 2, seed: 1 } }, params: { slowMs: 25 }, priority: 'HIGH' }) })
    const highDone = await finished(a, high.id)
    const lowWhenHighEnded = (await a.campaigns.status(low.id))!
    expect(highDone.state).toBe('SUCCEEDED')
    // LOW only advanced by what was already leased when HIGH arrived (one running, one queued) and what it had done
    expect(lowWhenHighEnded.shards.done).toBeLessThan(10)
    expect((await finished(a, low.id)).state).toBe('SUCCEEDED')
  })
})

describe('large results', () => {
  it('a shard whose rows do not fit in a message reaches the coordinator as a blob', async () => {
    mesh = await createMesh()
    const coordinator = await mesh.start({ name: 'coord', probe: fakeCapabilities() })
    await mesh.start({ name: 'remote', bootstrap: [multiaddr(coordinator.multiaddrs()[0]!)], probe: fakeCapabilities({ 'test.role.worker': { status: 'ok' } }) })
    const file = await campaignFile('big', {
      shards: { iterations: { total: 200, perShard: 100, seed: 9 } },
      params: { padding: 4000 },
      requires: { capabilities: ['test.role.worker'] }
    })
    const s = await coordinator.campaigns.submit({ file })
    const done = await finished(coordinator, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 2 } })
    expect(done.workers.map(w => w.name)).toEqual(['remote'])
    const rows = (await exported(coordinator, s.id, 'jsonl')).trim().split('\n').map(l => JSON.parse(l) as { item: number, pad: string })
    expect(rows).toHaveLength(200)
    expect(rows.every((r, i) => r.item === i && r.pad.length === 4000)).toBe(true)
  })
})

describe('module checkpoints', () => {
  it('a retried shard resumes from the checkpoint its failed attempt saved', async () => {
    mesh = await createMesh()
    const a = await mesh.start({ name: 'a' })
    const file = await campaignFile('ckpt', {
      workload: { kind: 'module', module: fileURLToPath(new URL('../fixtures/campaigns/checkpointer.mjs', import.meta.url)) },
      shards: { iterations: { total: 3, perShard: 1, seed: 1 } },
      retry: { maxAttempts: 2, initialDelay: '10ms' }
    })
    const s = await a.campaigns.submit({ file })
    const done = await finished(a, s.id)
    expect(done).toMatchObject({ state: 'SUCCEEDED', shards: { done: 3 } })
    const rows = (await exported(a, s.id, 'jsonl')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    expect(rows).toEqual([0, 1, 2].map(i => ({ shard: i, attempt: 2, resumedWith: i * 1000, from: 'first half' })))
  })
})
