import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { AuditLog, verifyAudit } from '../../actors/coordinator/audit.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => { dir = await tempDir('zp-audit-') })
afterAll(async () => { await dir.remove() })

async function logOf (name: string, events: number): Promise<{ file: string, head: string }> {
  const file = join(dir.path, name)
  const log = await AuditLog.open(file)
  log.append({ type: 'submitted', campaign: 'c-test123' })
  for (let i = 0; i < events; i++) log.append({ type: 'results', shards: String(i), worker: 'w1' })
  await log.close()
  return { file, head: log.head }
}

const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8')).trimEnd().split('\n')

describe('hash-chained audit log', () => {
  it('verifies an untouched log, and continues the chain when reopened', async () => {
    const { file, head } = await logOf('ok.jsonl', 5)
    expect(await verifyAudit(file, head)).toMatchObject({ ok: true, records: 6, head })
    const again = await AuditLog.open(file)
    again.append({ type: 'resumed', done: 5 })
    await again.close()
    expect(await verifyAudit(file, again.head)).toMatchObject({ ok: true, records: 7 })
  })

  it('finds a changed line', async () => {
    const { file, head } = await logOf('changed.jsonl', 5)
    const ls = await lines(file)
    ls[3] = ls[3]!.replace('"worker":"w1"', '"worker":"w2"')
    await writeFile(file, ls.join('\n') + '\n')
    expect(await verifyAudit(file, head)).toMatchObject({ ok: false, problem: { line: 4, reason: expect.stringMatching(/changed/) } })
  })

  it('finds a removed line, and a removed tail', async () => {
    const { file, head } = await logOf('removed.jsonl', 5)
    const ls = await lines(file)
    await writeFile(file, [...ls.slice(0, 2), ...ls.slice(3)].join('\n') + '\n')
    expect(await verifyAudit(file, head)).toMatchObject({ ok: false, problem: { line: 3, reason: expect.stringMatching(/removed/) } })
    const tail = await logOf('tail.jsonl', 5)
    await writeFile(tail.file, (await lines(tail.file)).slice(0, -2).join('\n') + '\n')
    expect(await verifyAudit(tail.file, tail.head)).toMatchObject({ ok: false, problem: { reason: expect.stringMatching(/removed from the end/) } })
  })

  it('drops a line cut short by a crash before continuing', async () => {
    const { file } = await logOf('torn.jsonl', 2)
    await appendFile(file, '{"seq":4,"t":"2026-')
    const log = await AuditLog.open(file)
    log.append({ type: 'resumed' })
    await log.close()
    expect(await verifyAudit(file, log.head)).toMatchObject({ ok: true, records: 4 })
  })
})
