import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { AuditLog, verifyAudit } from '../../actors/coordinator/audit.ts'
import { AuditTrail } from '../../actors/coordinator/audit-trail.ts'
import { BUSY_BACKOFF_MS, onLeaseOutcome, REFUSING_BACKOFF_MS, type LeasingIO } from '../../actors/coordinator/leasing.ts'
import { planOf } from '../../actors/coordinator/open.ts'
import { CampaignRun } from '../../actors/coordinator/campaign.ts'
import { onRelease, onResult, type ResultIO } from '../../actors/coordinator/results.ts'
import { CampaignSession } from '../../actors/coordinator/session.ts'
import { CampaignStore } from '../../actors/coordinator/store.ts'
import type { ActorContext } from '../../actors/runtime/types.ts'
import { silentLogger } from '../../node/logger.ts'
import { openDb, Storage } from '../../node/storage.ts'
import type { CoordinatorRequest } from '../../protocols/campaign/messages.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import { shardsOf, tempDir } from '../helpers.ts'

// Lease and result handling on one campaign session: a real store (LevelDB in a temp dir) and audit log, no mesh.

const ID = 'c-session0001'
const spec = {
  name: 'unit', priority: 'NORMAL', shards: { kind: 'iterations', total: 4, perShard: 1, seed: 1 },
  workload: { kind: 'module', module: { hash: 'a'.repeat(64), size: 1, name: 'm.mjs' } }, params: {},
  retry: { maxAttempts: 2, initialDelayMs: 10, backoffFactor: 1, maxDelayMs: 10 },
  requires: { capabilities: [], minMemoryBytes: 0 }, shardTimeoutMs: 60_000, source: {}
} as unknown as CampaignSpec

let dir: { path: string, remove: () => Promise<void> }
let storage: Storage
let store: CampaignStore
let session: CampaignSession
let now = 1000
const told: Array<{ worker: string, msg: unknown }> = []
const ctx = { now: () => now, signal: new AbortController().signal, self: { peer: 'me', name: 'coordinator' } } as unknown as ActorContext
const results: ResultIO = {
  log: silentLogger(),
  fetchOutput: async () => { throw new Error('no blobs here') },
  fetched: async () => { throw new Error('no blobs here') },
  tellWorker: (worker, msg) => { told.push({ worker, msg }) },
  changed: () => {}
}
const leasing: LeasingIO = { self: 'me', ctx, log: silentLogger(), grant: () => {} }

beforeEach(async () => {
  dir = await tempDir('zp-session-')
  storage = new Storage(await openDb(join(dir.path, 'db'), dir.path), silentLogger())
  store = new CampaignStore(storage)
  const run = new CampaignRun({ id: ID, spec, plan: planOf(spec), createdAt: 0 })
  const audit = new AuditTrail(await AuditLog.open(join(dir.path, 'audit.jsonl')), () => now)
  session = new CampaignSession({
    run, audit,
    record: { id: ID, spec, specHash: 'h', createdAt: 0, state: 'QUEUED', shards: 4, done: 0, deadLetters: [], runDir: dir.path },
    io: { self: 'me', selfName: 'me', store, ctx, log: silentLogger(), peers: () => [], blobs: { grant: () => {}, revoke: () => {} } }
  })
  await session.saveRecord()
  told.length = 0
})
afterEach(async () => {
  await session.close()
  await storage.close()
  await dir.remove()
})

const result = (index: number, epoch: number, rows: unknown[] = [{ v: index }]): Extract<CoordinatorRequest, { type: 'result' }> =>
  ({ type: 'result', campaignId: ID, index, epoch, attempt: 1, durationMs: 5, outcome: { ok: true, output: { rows } } })
const failure = (index: number, epoch: number, retryable = true): Extract<CoordinatorRequest, { type: 'result' }> =>
  ({ type: 'result', campaignId: ID, index, epoch, attempt: 1, durationMs: 5, outcome: { ok: false, error: 'boom', retryable } })

describe('a campaign session', () => {
  it('stores a result before it counts, ends the lease with it, and answers a duplicate by comparing rows', async () => {
    const [l0] = session.run.grantNext(1, 'w1', 'one', now)
    await session.commit([{ op: 'leases', put: [{ index: 0, worker: 'w1', epoch: l0!.epoch }], del: [] }])
    expect(await onResult(session, result(0, l0!.epoch), 'w1', now, results)).toEqual({ ok: true, duplicate: false })
    expect(session.run.stateOf(0)).toBe('done')
    expect((await store.result(ID, 0))?.rows).toEqual([{ v: 0 }])
    expect(await collect(store.leases(ID))).toEqual([])
    // the same shard again from a worker that held it: the same rows are a harmless duplicate, others refused
    session.rememberHolder(0, 'w2')
    expect(await onResult(session, result(0, 99), 'w2', now, results)).toEqual({ ok: true, duplicate: true })
    expect(await onResult(session, result(0, 99, [{ v: 'other' }]), 'w2', now, results)).toEqual({ ok: false, stale: true })
  })

  it('ignores a result from a peer that never held the shard', async () => {
    session.run.grantNext(1, 'w1', 'one', now)
    expect(await onResult(session, result(0, 1), 'intruder', now, results)).toEqual({ ok: false, stale: true })
    expect(await store.result(ID, 0)).toBeUndefined()
  })

  it('a failure is retried, then dead-lettered; the shard record names where each attempt failed', async () => {
    const [a] = session.run.grantNext(1, 'w1', 'one', now)
    expect(await onResult(session, failure(0, a!.epoch), 'w1', now, results)).toEqual({ ok: true })
    expect(session.run.stateOf(0)).toBe('retrying')
    now += 20
    const [b] = session.run.grantNext(0, 'w2', 'two', now, [0])
    expect(b).toMatchObject({ index: 0, attempt: 2 })
    // a late failure of the first lease changes nothing
    expect(await onResult(session, failure(0, a!.epoch), 'w1', now, results)).toMatchObject({ stale: true })
    expect(session.run.failures(0)).toBe(1)
    expect(await onResult(session, failure(0, b!.epoch), 'w2', now, results)).toEqual({ ok: true })
    expect(session.run.stateOf(0)).toBe('failed')
    expect(await store.shard(ID, 0)).toMatchObject({ failures: 2, failedOn: ['w1', 'w2'], dead: { attempts: 2, error: 'boom' } })
  })

  it('a handed-back shard goes back to the queue without counting an attempt; only its holder may hand it back', async () => {
    const [l] = session.run.grantNext(1, 'w1', 'one', now)
    expect(onRelease(session, { type: 'release', campaignId: ID, index: 0, epoch: l!.epoch, reason: 'draining' }, 'w2', results)).toEqual({ ok: false })
    expect(onRelease(session, { type: 'release', campaignId: ID, index: 0, epoch: l!.epoch, reason: 'draining' }, 'w1', results)).toEqual({ ok: true })
    expect(session.run.stateOf(0)).toBe('pending')
    expect(session.run.grantNext(1, 'w2', 'two', now)[0]).toMatchObject({ index: 0, attempt: 1 })
    // the first holder may still deliver
    expect(session.held(0, 'w1')).toBe(true)
  })

  it('leases refused, undelivered or fenced go back first in line; a worker that does not trust this node is left alone longer', () => {
    const leases = session.run.grantNext(3, 'w1', 'one', now)
    const sent = leases.map(l => ({ index: l.index, epoch: l.epoch }))
    const refused = onLeaseOutcome(session, {
      type: 'lease-reply', campaignId: ID, worker: 'w1', sent, reply: { accepted: [sent[0]!.epoch], refused: [{ epoch: sent[1]!.epoch, code: 'busy', reason: 'busy: 2 running' }], free: 0 }
    }, leasing)
    expect(refused).toBe(BUSY_BACKOFF_MS)
    expect([0, 1, 2].map(i => session.run.stateOf(i))).toEqual(['leased', 'pending', 'leased'])
    const notTrusted = onLeaseOutcome(session, { type: 'lease-reply', campaignId: ID, worker: 'w1', sent: [sent[2]!], error: { name: 'NotAuthorizedError', message: 'not trusted' } }, leasing)
    expect(notTrusted).toBe(REFUSING_BACKOFF_MS)
    expect(session.refusedBy.has('w1')).toBe(true)
    // the requeued ones are leased again before the untouched shard 3
    expect(session.run.grantNext(3, 'w2', 'two', now).map(l => l.index)).toEqual([1, 2, 3])
    const fenced = onLeaseOutcome(session, { type: 'lease-reply', campaignId: ID, worker: 'w2', sent: [{ index: 3, epoch: session.run.lease(3)!.epoch }], fenced: true }, leasing)
    expect(fenced).toBeUndefined()
    expect(session.run.stateOf(3)).toBe('pending')
  })

  it('gathers the audit\'s leases and results per worker into one record each per flush, and the chain verifies', async () => {
    for (let i = 0; i < 4; i++) {
      const [l] = session.run.grantNext(1, 'w1', 'one', now)
      session.audit.leased('w1', [l!])
      await onResult(session, result(l!.index, l!.epoch), 'w1', now, results)
    }
    session.audit.append({ type: 'finished', state: 'SUCCEEDED' })
    await session.audit.flushed()
    const records = (await readFile(join(dir.path, 'audit.jsonl'), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    expect(records.map(r => r.type)).toEqual(['leased', 'results', 'finished'])
    expect(shardsOf(records[1]!.shards)).toEqual([0, 1, 2, 3])
    expect(records[1]).toMatchObject({ count: 4, rows: 4, worker: 'w1' })
    expect(await verifyAudit(join(dir.path, 'audit.jsonl'), session.audit.head)).toMatchObject({ ok: true, records: 3 })
  })
})

async function collect<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}
