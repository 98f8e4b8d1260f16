import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import { auditedResults, shardsOf, tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, runCli, waitForStates, type ProcessMesh } from './harness.ts'

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SHARDS = { iterations: { total: 600, perShard: 10, seed: 11 } }

let scratch: { path: string, remove: () => Promise<void> }
/** the export of the same shards from an undisturbed one-node run */
let reference: string
let mesh: ProcessMesh | undefined

async function campaignFile (name: string, params: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  const file = join(scratch.path, `${name}.json`)
  await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, shards: SHARDS, params, retry: { maxAttempts: 3, initialDelay: '50ms' }, ...extra }))
  return file
}

async function api<T> (m: ProcessMesh, node: LocalNode, method: string, path: string): Promise<T> {
  return await (await m.api(node)).request<T>(method, path, { timeoutMs: 60_000 })
}

async function finished (m: ProcessMesh, node: LocalNode, id: string, timeoutMs = 120_000): Promise<CampaignStatus> {
  return await waitFor(async () => {
    const s = await api<CampaignStatus>(m, node, 'GET', `/v1/campaigns/${id}`)
    return ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
  }, { timeoutMs, what: `campaign ${id} to end` })
}

async function exported (m: ProcessMesh, node: LocalNode, id: string, opts: { partial?: boolean } = {}): Promise<string> {
  return await api<string>(m, node, 'GET', `/v1/campaigns/${id}/results?format=jsonl${opts.partial === true ? '&partial=true' : ''}`)
}

/** The audit log of an ended campaign, once its closing record has reached the file. */
async function auditRecords (runDir: string): Promise<Array<Record<string, unknown>>> {
  return await waitFor(async () => {
    const records = (await readFile(join(runDir, 'audit.jsonl'), 'utf8')).trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
    return records.some(r => r.type === 'finished') ? records : undefined
  }, { what: 'the audit log to close' })
}

const idOf = (node: LocalNode): string => node.info!.peerId

/** Every shard has exactly one result record: none lost, none counted twice. */
function expectOneResultEach (records: Array<Record<string, unknown>>, shards: number): void {
  const results = auditedResults(records)
  expect(results.length).toBe(shards)
  expect(new Set(results).size).toBe(shards)
}

/** A coordinator and two workers that joined through it. */
async function threeNodes (): Promise<{ m: ProcessMesh, coord: LocalNode, workers: LocalNode[] }> {
  const m = await createProcessMesh()
  mesh = m
  const coord = await m.start('coord', { args: ['--slots', '2'] })
  const workers = [await m.start('w1', { via: coord, args: ['--slots', '2'] }), await m.start('w2', { via: coord, args: ['--slots', '2'] })]
  await waitForStates(m, coord, ['w1', 'w2'], 'alive')
  await waitFor(async () => (await m.peers(coord)).every(p => p.capabilities != null), { timeoutMs: 60_000, what: 'capabilities' })
  return { m, coord, workers }
}

beforeAll(async () => {
  scratch = await tempDir('zp-chaos-')
  const m = await createProcessMesh()
  try {
    const solo = await m.start('reference', { args: ['--slots', '2'] })
    const id = (await runCli('zp', ['submit', await campaignFile('reference', {}), '--data-dir', solo.dataDir])).stdout.trim()
    expect((await finished(m, solo, id)).state).toBe('SUCCEEDED')
    reference = await exported(m, solo, id)
  } finally {
    await m.stop()
  }
})
afterEach(async () => {
  await mesh?.stop()
  mesh = undefined
})
afterAll(async () => { await scratch.remove() })

describe('chaos: real processes, kill -9, restarts', () => {
  it('kill -9 of a worker mid-campaign: results byte-identical to a clean run, none lost, none twice', async () => {
    const { m, coord, workers } = await threeNodes()
    const id = (await runCli('zp', ['submit', await campaignFile('lose-a-worker', { slowMs: 15 }), '--data-dir', coord.dataDir])).stdout.trim()
    await waitFor(async () => (await api<CampaignStatus>(m, coord, 'GET', `/v1/campaigns/${id}`)).workers.some(w => w.name === 'w1' && w.done >= 3), { what: 'w1 to finish some shards' })
    workers[0]!.kill('SIGKILL')
    const status = await finished(m, coord, id)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 } })
    expect(await exported(m, coord, id)).toBe(reference)
    const records = await auditRecords(status.runDir)
    expectOneResultEach(records, 60)
    expect(records.some(r => r.type === 'requeued' && String(r.reason).includes('died'))).toBe(true)
    // losing a worker is not the shards' fault: nothing counted as a failed attempt
    expect(records.filter(r => r.type === 'failed')).toEqual([])
  })

  it('kill -9 of the coordinator node and a restart: the campaign finishes from its checkpoint, no finished shard runs again', async () => {
    const { m, coord } = await threeNodes()
    // without replicas: this is about the restart; with them a replica may take over first (the next test)
    const id = (await runCli('zp', ['submit', await campaignFile('lose-the-coordinator', { slowMs: 15 }, { replicas: 0 }), '--data-dir', coord.dataDir])).stdout.trim()
    await waitFor(async () => (await api<CampaignStatus>(m, coord, 'GET', `/v1/campaigns/${id}`)).shards.done >= 10, { what: 'ten shards done' })
    coord.kill('SIGKILL')
    await coord.exited
    const again = await m.start('coord', { dataDir: coord.dataDir, args: ['--slots', '2'] })
    const status = await finished(m, again, id)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 } })
    expect(await exported(m, again, id)).toBe(reference)
    const records = await auditRecords(status.runDir)
    const resumedAt = records.findIndex(r => r.type === 'resumed')
    expect(resumedAt).toBeGreaterThan(0)
    // the resume names every shard the checkpoint holds a result of (the last tick's audit records may have died with the process)
    const doneBefore = new Set(shardsOf(records[resumedAt]!.doneShards))
    expect(doneBefore.size).toBeGreaterThanOrEqual(10)
    expect(auditedResults(records.slice(0, resumedAt)).filter(s => !doneBefore.has(s))).toEqual([])
    const leasedAfter = records.slice(resumedAt).filter(r => r.type === 'leased').flatMap(r => shardsOf(r.shards))
    expect(leasedAfter.filter(s => doneBefore.has(s))).toEqual([])
    // after the resume, each of the others exactly once
    const after = auditedResults(records.slice(resumedAt))
    expect(new Set(after).size).toBe(after.length)
    expect(new Set([...doneBefore, ...after]).size).toBe(60)
    expect(doneBefore.size + after.length).toBe(60)
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', again.dataDir])).code).toBe(0)
  })

  it('--no-resume leaves the campaign stopped and says so; zp resume picks it up', async () => {
    const { m, coord } = await threeNodes()
    const id = (await runCli('zp', ['submit', await campaignFile('resume-later', { slowMs: 15 }, { replicas: 0 }), '--data-dir', coord.dataDir])).stdout.trim()
    await waitFor(async () => (await api<CampaignStatus>(m, coord, 'GET', `/v1/campaigns/${id}`)).shards.done >= 5, { what: 'five shards done' })
    coord.kill('SIGKILL')
    await coord.exited
    const again = await m.start('coord', { dataDir: coord.dataDir, args: ['--slots', '2', '--no-resume'] })
    const stopped = await api<CampaignStatus>(m, again, 'GET', `/v1/campaigns/${id}`)
    // stopped, with the shards that were done before the kill counted (every stored result), and how to go on
    const stored = new Set((await exported(m, again, id, { partial: true })).trim().split('\n').map(l => (JSON.parse(l) as { shard: number }).shard)).size
    expect(stopped).toMatchObject({ state: 'STOPPED', shards: { total: 60, done: stored } })
    expect(stored).toBeGreaterThanOrEqual(5)
    expect(stopped.waiting).toContain(`zp resume ${id}`)
    const shown = await runCli('zp', ['status', id, '--data-dir', again.dataDir])
    expect(shown.stdout).toMatch(/STOPPED/)
    expect(shown.stdout).toContain(`zp resume ${id}`)
    const resumed = await runCli('zp', ['resume', id, '--wait', '--json', '--data-dir', again.dataDir], { timeoutMs: 180_000 })
    expect(resumed.code).toBe(0)
    expect(JSON.parse(resumed.stdout)).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60 } })
    expect(await exported(m, again, id)).toBe(reference)
    const twice = await runCli('zp', ['resume', id, '--data-dir', again.dataDir])
    expect(twice.code).toBe(1)
    expect(twice.stderr).toMatch(/has ended \(SUCCEEDED\); there is nothing to resume/)
  })

  it('the coordinator node gone for good: a replica is elected, finishes the campaign, and status and results work from any node', async () => {
    const { m, coord, workers } = await threeNodes()
    const id = (await runCli('zp', ['submit', await campaignFile('lose-the-coordinator-for-good', { slowMs: 15 }), '--data-dir', coord.dataDir])).stdout.trim()
    await waitFor(async () => {
      const s = await api<CampaignStatus>(m, coord, 'GET', `/v1/campaigns/${id}`)
      return s.shards.done >= 10 && s.replicas?.length === 2
    }, { what: 'ten shards done, with two replicas' })
    coord.kill('SIGKILL')
    await coord.exited
    // asked on either survivor, the status names the replica that took over
    const taken = await waitFor(async () => {
      const s = await api<CampaignStatus>(m, workers[1]!, 'GET', `/v1/campaigns/${id}`).catch(() => undefined)
      return s != null && (s.term ?? 0) >= 1 && workers.some(w => idOf(w) === s.coordinator) ? s : undefined
    }, { timeoutMs: 90_000, what: 'a replica to take the campaign over' })
    const winner = workers.find(w => idOf(w) === taken.coordinator)!
    const other = workers.find(w => w !== winner)!
    const status = await finished(m, other, id, 180_000)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 }, coordinator: idOf(winner) })
    expect(await exported(m, winner, id)).toBe(reference)
    // the other replica holds every result too: zp results works there
    await waitFor(async () => (await runCli('zp', ['results', id, '--format', 'jsonl', '--data-dir', other.dataDir])).stdout === reference, { what: 'the other replica to export the whole result' })
    const shown = await runCli('zp', ['status', id, '--json', '--data-dir', other.dataDir])
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'SUCCEEDED', coordinator: idOf(winner) })
    // the new coordinator's audit log starts with the takeover; no shard done before it was counted again
    const records = await auditRecords((await api<CampaignStatus>(m, winner, 'GET', `/v1/campaigns/${id}`)).runDir)
    const takeover = records.find(r => r.type === 'takeover')
    expect(takeover).toMatchObject({ previous: idOf(coord) })
    expect(auditedResults(records).length).toBe(60 - (takeover!.done as number))
    expect((await runCli('zp', ['audit', 'verify', id, '--data-dir', winner.dataDir])).code).toBe(0)
  })

  it('kill -9 of a replica mid-campaign and a restart: every node\'s zp results and zp status equal the coordinator\'s', async () => {
    const { m, coord, workers } = await threeNodes()
    const spare = await m.start('w3', { via: coord, args: ['--slots', '2'] })
    await waitForStates(m, coord, ['w3'], 'alive')
    const id = (await runCli('zp', ['submit', await campaignFile('lose-a-replica', { slowMs: 40 }), '--data-dir', coord.dataDir])).stdout.trim()
    const before = await waitFor(async () => {
      const s = await api<CampaignStatus>(m, coord, 'GET', `/v1/campaigns/${id}`)
      return s.shards.done >= 8 && s.replicas?.length === 2 ? s : undefined
    }, { what: 'eight shards done, with two replicas' })
    const all = [...workers, spare]
    const victim = all.find(w => idOf(w) === before.replicas![0])!
    victim.kill('SIGKILL')
    await victim.exited
    const again = await m.start(`${victim.name}-again`, { dataDir: victim.dataDir, via: coord, args: ['--slots', '2'] })
    const status = await finished(m, coord, id, 180_000)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 } })
    const truth = await exported(m, coord, id)
    expect(truth).toBe(reference)
    // the restarted replica (caught up, or dropped and holding an old copy) and every other node answer as the coordinator does
    for (const node of [again, ...all.filter(w => w !== victim)]) {
      const out = await runCli('zp', ['results', id, '--format', 'jsonl', '--data-dir', node.dataDir])
      expect({ node: node.name, code: out.code, same: out.stdout === truth }).toEqual({ node: node.name, code: 0, same: true })
      const shown = JSON.parse((await runCli('zp', ['status', id, '--json', '--data-dir', node.dataDir])).stdout) as CampaignStatus
      expect({ node: node.name, state: shown.state, done: shown.shards.done, stale: shown.stale ?? false }).toEqual({ node: node.name, state: 'SUCCEEDED', done: 60, stale: false })
    }
  })

  it('zp audit verify finds a changed record', async () => {
    const m = await createProcessMesh()
    mesh = m
    const node = await m.start('auditor')
    const id = (await runCli('zp', ['submit', await campaignFile('audited', {}), '--data-dir', node.dataDir])).stdout.trim()
    const status = await finished(m, node, id)
    await auditRecords(status.runDir)
    const ok = await runCli('zp', ['audit', 'verify', id, '--data-dir', node.dataDir])
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/^ok: \d+ records, chain intact/)
    const file = join(status.runDir, 'audit.jsonl')
    const lines = (await readFile(file, 'utf8')).split('\n')
    const target = lines.findIndex(l => l.includes('"type":"results"'))
    lines[target] = lines[target]!.replace(/"worker":"[^"]+"/, '"worker":"someone-else"')
    await writeFile(file, lines.join('\n'))
    const bad = await runCli('zp', ['audit', 'verify', id, '--data-dir', node.dataDir])
    expect(bad.code).toBe(1)
    expect(bad.stdout).toContain(`TAMPERED: line ${target + 1}: its hash does not match its contents`)
  })
})

describe('chaos: a full disk under the coordinator', () => {
  const mountPoint = join('/tmp', `zp-tmpfs-${process.pid}`)
  let mounted = false
  beforeAll(async () => {
    await mkdir(mountPoint, { recursive: true })
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mountPoint], { stdio: 'pipe' })
      mounted = true
    } catch (err) {
      console.warn(`skipped: cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); the full-disk test needs root`)
    }
  })
  afterAll(async () => {
    await mesh?.stop()
    mesh = undefined
    if (mounted) execFileSync('umount', [mountPoint])
    await rm(mountPoint, { recursive: true, force: true })
  })

  it('results that cannot be written stay owed with a clear error, and nothing is lost once space returns', async ({ skip }) => {
    if (!mounted) skip()
    const m = await createProcessMesh()
    mesh = m
    // its data dir on the small tmpfs; its logs and console output elsewhere, to read them while the disk is full
    const coordLog = join(scratch.path, 'full-disk-coord.log')
    const coord = await m.start('coord', { dataDir: join(mountPoint, 'coord'), outFile: join(scratch.path, 'full-disk-coord.out'), args: ['--slots', '1', '--log-file', coordLog] })
    const worker = await m.start('w1', { via: coord, args: ['--slots', '2'] })
    await waitForStates(m, coord, ['w1'], 'alive')
    // leave about 3 MB free; the campaign's results need about 10 MB
    const filler = join(mountPoint, 'filler')
    const free = Number(execFileSync('df', ['--output=avail', '-B1', mountPoint]).toString().trim().split('\n')[1])
    await writeFile(filler, randomBytes(Math.max(0, free - 3 * 2 ** 20)))
    const id = (await runCli('zp', ['submit', await campaignFile('fill-the-disk', { padding: 16_000 }), '--data-dir', coord.dataDir])).stdout.trim()
    await waitFor(async () => (await logLines(coord, coordLog)).some(l => /database writes fail .*No space left on device/.test(String(l.msg))), { timeoutMs: 120_000, what: 'the coordinator to report the full disk' })
    await waitFor(async () => (await logLines(worker)).some(l => /could not deliver the shard result; retrying/.test(String(l.msg))), { timeoutMs: 60_000, what: 'the worker to keep its result and retry' })
    await rm(filler)
    const status = await finished(m, coord, id, 180_000)
    expect(status).toMatchObject({ state: 'SUCCEEDED', shards: { done: 60, failed: 0 } })
    await waitFor(async () => (await logLines(coord, coordLog)).some(l => l.msg === 'database writes work again'), { what: 'the coordinator to report its database writable again' })
    const rows = (await exported(m, coord, id)).trim().split('\n').map(l => JSON.parse(l) as { item: number, pad: string })
    expect(rows.map(r => r.item)).toEqual(Array.from({ length: 600 }, (_, i) => i))
    expect(rows.every(r => r.pad.length === 16_000)).toBe(true)
    // every warning while the disk was full names the full disk, none a database caught closed
    const said = [...await logLines(coord, coordLog), ...await logLines(worker)].map(l => JSON.stringify(l))
    expect(said.filter(l => /not open/i.test(l))).toEqual([])
    expect(said.some(l => /database writes are paused since they failed \(.*No space left on device/.test(l))).toBe(true)
  })
})
