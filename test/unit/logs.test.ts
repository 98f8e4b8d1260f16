import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { queryLogFile } from '../../node/logs/file.ts'
import { queryMeshLogs, UnknownNodeError, type LogPorts } from '../../node/logs/mesh.ts'
import { BadCursorError, decodeCursor, encodeCursor, matches, mergeByTime, type LogRecord, type NodeLogReply } from '../../node/logs/query.ts'
import { formatLogLine } from '../../node/cli/logs.ts'
import { tempDir } from '../helpers.ts'

const T0 = Date.parse('2026-01-01T00:00:00.000Z')
const iso = (ms: number): string => new Date(T0 + ms).toISOString()
const line = (i: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ level: 30, time: iso(i), node: 'a', campaign: i % 2 === 0 ? 'c-even000' : 'c-odd0000', shard: i % 7, msg: `line ${i} ünïcödé ${'x'.repeat(i % 50)}`, ...extra }) + '\n'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => { dir = await tempDir('zp-logs-') })
afterAll(async () => { await dir.remove() })

describe('the line filter', () => {
  const rec = { level: 40, time: iso(5000), campaign: 'c-abcdef', shard: 3, msg: 'm' }
  it('keeps a line only when every given field matches', () => {
    expect(matches(rec, {})).toBe(true)
    expect(matches(rec, { campaign: 'c-abcdef', shard: 3, level: 40, sinceMs: T0 + 5000 })).toBe(true)
    expect(matches(rec, { campaign: 'c-zzzzzz' })).toBe(false)
    expect(matches(rec, { shard: 0 })).toBe(false)
    expect(matches(rec, { level: 50 })).toBe(false)
    expect(matches(rec, { sinceMs: T0 + 5001 })).toBe(false)
    expect(matches({ msg: 'no time' }, { sinceMs: 0 })).toBe(false)
  })
})

describe('merging nodes\' lines', () => {
  it('orders by time, keeping each node\'s own order for equal times', () => {
    const r = (node: string, ms: number, n: number): { record: LogRecord } => ({ record: { node, time: iso(ms), n } })
    const merged = mergeByTime([[r('a', 0, 1), r('a', 20, 2), r('a', 20, 3)], [r('b', 10, 1), r('b', 20, 2), r('b', 30, 3)]])
    expect(merged.map(e => `${String(e.record.node)}${String(e.record.n)}`)).toEqual(['a1', 'b1', 'a2', 'a3', 'b2', 'b3'])
  })
})

describe('the cursor', () => {
  it('round-trips, and a forged one is refused with what to do', () => {
    expect(decodeCursor(encodeCursor({ peerA: 10, peerB: 0 }))).toEqual({ peerA: 10, peerB: 0 })
    expect(() => decodeCursor('not-a-cursor')).toThrow(BadCursorError)
    expect(() => decodeCursor(encodeCursor({ p: -1 } as never))).toThrow(/previous answer/)
  })
})

describe('reading a log file', () => {
  it('returns the newest matching lines from a file many chunks long, in file order, and says it left older ones out', async () => {
    const file = join(dir.path, 'big.log')
    // ~300 KB: several 64 KiB chunks, lines (with multi-byte characters) straddling their edges
    await writeFile(file, Array.from({ length: 3000 }, (_, i) => line(i)).join('') + '{"level":30,"time":"' + iso(9999))
    const reply = await queryLogFile(file, { campaign: 'c-odd0000', limit: 100 })
    expect(reply.records.map(r => r.msg)).toEqual(Array.from({ length: 100 }, (_, k) => 2801 + 2 * k).map(i => JSON.parse(line(i)).msg))
    expect(reply.truncated).toBe(true)
    // the line still being written is not read, and following starts before it
    const { size } = await import('node:fs/promises').then(async fs => await fs.stat(file))
    expect(reply.offset).toBe(size - Buffer.byteLength('{"level":30,"time":"' + iso(9999)))
    const all = await queryLogFile(file, { limit: 5000 }, 1024 * 1024)
    expect(all.records).toHaveLength(3000)
    expect(all.truncated).toBe(false)
    expect(all.records.map(r => r.msg)).toEqual(Array.from({ length: 3000 }, (_, i) => JSON.parse(line(i)).msg))
  })

  it('filters by shard, level and time, stopping at the first line older than --since', async () => {
    const file = join(dir.path, 'filters.log')
    await writeFile(file, 'not json\n' + Array.from({ length: 200 }, (_, i) => line(i, i === 150 ? { level: 50 } : {})).join(''))
    expect((await queryLogFile(file, { shard: 3, limit: 1000 })).records.every(r => r.shard === 3)).toBe(true)
    expect((await queryLogFile(file, { level: 50, limit: 1000 })).records.map(r => r.msg)).toEqual([JSON.parse(line(150)).msg])
    expect((await queryLogFile(file, { sinceMs: T0 + 190, limit: 1000 })).records).toHaveLength(10)
  })

  it('follows: from an offset it returns the lines appended since, whole lines only, and restarts on a truncated file', async () => {
    const file = join(dir.path, 'follow.log')
    await writeFile(file, line(0) + line(1))
    const first = await queryLogFile(file, { limit: 10 })
    expect(first.records).toHaveLength(2)
    await appendFile(file, line(2) + line(3).slice(0, 20))
    const second = await queryLogFile(file, { limit: 10, from: first.offset })
    expect(second.records.map(r => r.msg)).toEqual([JSON.parse(line(2)).msg])
    await appendFile(file, line(3).slice(20) + line(4))
    const third = await queryLogFile(file, { limit: 1, from: second.offset })
    expect(third.records.map(r => r.msg)).toEqual([JSON.parse(line(3)).msg])
    expect(third.truncated).toBe(true)
    const fourth = await queryLogFile(file, { limit: 10, from: third.offset })
    expect(fourth.records.map(r => r.msg)).toEqual([JSON.parse(line(4)).msg])
    // rotated away (copytruncate): the offset is past the end, so the new file is read from its start
    await writeFile(file, line(5))
    expect((await queryLogFile(file, { limit: 10, from: fourth.offset })).records.map(r => r.msg)).toEqual([JSON.parse(line(5)).msg])
    expect(await queryLogFile(join(dir.path, 'absent.log'), { limit: 10 })).toEqual({ records: [], offset: 0, truncated: false })
  })

  it('keeps a reply under the byte cap', async () => {
    const file = join(dir.path, 'cap.log')
    await writeFile(file, Array.from({ length: 100 }, (_, i) => line(i)).join(''))
    const reply = await queryLogFile(file, { limit: 100 }, 1000)
    expect(reply.records.length).toBeGreaterThan(0)
    expect(reply.records.length).toBeLessThan(20)
    expect(reply.truncated).toBe(true)
  })
})

describe('asking the mesh', () => {
  const reply = (node: string, times: number[], offset = 100): NodeLogReply => ({ records: times.map(t => ({ time: iso(t), msg: `${node}${t}`, node })), offset, truncated: false })
  const ports = (answers: Record<string, NodeLogReply | Error>): LogPorts & { asked: Array<{ peer: string, from?: number }> } => {
    const asked: Array<{ peer: string, from?: number }> = []
    const answer = async (peer: string, from?: number): Promise<NodeLogReply> => {
      asked.push({ peer, from })
      const a = answers[peer]!
      if (a instanceof Error) throw a
      return a
    }
    return {
      asked,
      self: 'pa',
      peers: async () => [{ peerId: 'pa', name: 'a', state: 'alive' }, { peerId: 'pb', name: 'b', state: 'alive' }, { peerId: 'pc', name: 'c', state: 'suspect' }, { peerId: 'pd', name: 'd', state: 'dead' }],
      local: async (q) => await answer('pa', q.from),
      remote: async (peer, q) => await answer(peer, q.from)
    }
  }

  it('merges every live node\'s lines by time, names the node each came from, and lists the nodes that did not answer', async () => {
    const p = ports({ pa: reply('a', [0, 30]), pb: reply('b', [10, 20]), pc: new Error('timed out after 5000 ms') })
    const answer = await queryMeshLogs(p, { limit: 10 })
    expect(answer.records.map(r => r.msg)).toEqual(['a0', 'b10', 'b20', 'a30'])
    expect(answer.records[1]).toMatchObject({ node: 'b', peerId: 'pb' })
    expect(answer.unanswered).toEqual([{ node: 'c', peerId: 'pc', reason: expect.stringContaining('timed out') }])
    expect(p.asked.map(a => a.peer).sort()).toEqual(['pa', 'pb', 'pc'])
    expect(answer.cursor).toEqual({ pa: 100, pb: 100 })
  })

  it('keeps the newest lines in all, and follows from a cursor without dropping any', async () => {
    const p = ports({ pa: reply('a', [0, 30]), pb: reply('b', [10, 20]), pc: reply('c', [5]) })
    const newest = await queryMeshLogs(p, { limit: 2 })
    expect(newest.records.map(r => r.msg)).toEqual(['b20', 'a30'])
    expect(newest.truncated).toBe(true)
    const following = await queryMeshLogs(p, { limit: 2, cursor: { pa: 7, pb: 8 } })
    expect(following.records).toHaveLength(5)
    expect(p.asked.slice(-3)).toEqual(expect.arrayContaining([{ peer: 'pa', from: 7 }, { peer: 'pb', from: 8 }, { peer: 'pc', from: undefined }]))
  })

  it('asks only the named node, and refuses an unknown name listing the known ones', async () => {
    const p = ports({ pb: reply('b', [10]) })
    expect((await queryMeshLogs(p, { limit: 10, node: 'b' })).records.map(r => r.msg)).toEqual(['b10'])
    expect(p.asked.map(a => a.peer)).toEqual(['pb'])
    await expect(queryMeshLogs(p, { limit: 10, node: 'zz' })).rejects.toThrow(UnknownNodeError)
    await expect(queryMeshLogs(p, { limit: 10, node: 'zz' })).rejects.toThrow(/a, b, c, d/)
  })
})

describe('the human line', () => {
  it('shows time, node, level, campaign/shard, message and the other fields', () => {
    expect(formatLogLine({ time: iso(1500), level: 40, node: 'lab-3', peerId: 'p', nodeId: 'x', campaign: 'c-abcdef', shard: 3, msg: 'shard failed', err: 'boom', attempt: 2 }))
      .toBe('2026-01-01 00:00:01.500  lab-3  WARN   c-abcdef/3  shard failed  err=boom  attempt=2')
  })
})
