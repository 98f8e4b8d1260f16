import { z } from 'zod'

/** pino's level numbers, by name (what `--level` takes) */
export const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const
export type LevelName = keyof typeof LEVELS

/** lines one node returns at most per query, and the default */
export const MAX_LIMIT = 5000
export const DEFAULT_LIMIT = 1000
/**
 * JSON bytes of records one node returns at most: the reply must fit an actor
 * frame (256 KiB) with room for the envelope. A query that reaches it says so.
 */
export const MAX_REPLY_BYTES = 192 * 1024

const CampaignId = z.string().regex(/^c-[a-z0-9]{6,40}$/, { message: 'expected a campaign id like c-…' })

/** What one node is asked about its own log file (locally, or over the system actor). */
export const NodeLogQuerySchema = z.object({
  campaign: CampaignId.optional(),
  shard: z.number().int().nonnegative().optional(),
  /** epoch ms: only lines at or after it */
  sinceMs: z.number().int().nonnegative().optional(),
  /** the lowest pino level number kept */
  level: z.number().int().min(10).max(60).optional(),
  limit: z.number().int().positive().max(MAX_LIMIT),
  /** byte offset to read forward from (following); absent: the newest `limit` lines */
  from: z.number().int().nonnegative().optional()
}).strict()
export type NodeLogQuery = z.infer<typeof NodeLogQuerySchema>

export type LogRecord = Record<string, unknown>

export const NodeLogReplySchema = z.object({
  records: z.array(z.record(z.string(), z.unknown())),
  /** where the next forward read starts: the end of the last whole line read */
  offset: z.number().int().nonnegative(),
  /** more lines matched than were returned (older ones for a newest-first read, later ones for a forward read) */
  truncated: z.boolean()
})
export type NodeLogReply = z.infer<typeof NodeLogReplySchema>

/** Whether a parsed log line passes a query's filter. */
export function matches (rec: LogRecord, q: Pick<NodeLogQuery, 'campaign' | 'shard' | 'sinceMs' | 'level'>): boolean {
  if (q.campaign != null && rec.campaign !== q.campaign) return false
  if (q.shard != null && rec.shard !== q.shard) return false
  if (q.level != null && !(typeof rec.level === 'number' && rec.level >= q.level)) return false
  if (q.sinceMs != null && !(timeOf(rec) >= q.sinceMs)) return false
  return true
}

/** A line of the log file as a record; undefined for anything that is not a JSON object (a torn or foreign line). */
export function parseLine (line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const rec: unknown = JSON.parse(line)
    return typeof rec === 'object' && rec != null && !Array.isArray(rec) ? rec as LogRecord : undefined
  } catch {
    return undefined
  }
}

/** epoch ms of a record (pino writes ISO times here; epoch numbers are read too); NaN when it has none */
export function timeOf (rec: LogRecord): number {
  const t = rec.time
  if (typeof t === 'number') return t
  if (typeof t === 'string') return Date.parse(t)
  return Number.NaN
}

/**
 * Merges each node's lines (each already in file order) into one list in time
 * order. Stable: lines of one node keep their order, and equal times keep the
 * order of the lists.
 */
export function mergeByTime<T extends { record: LogRecord }> (lists: T[][]): T[] {
  const all = lists.flatMap((list, n) => list.map((item, i) => ({ item, n, i, t: timeOf(item.record) })))
  all.sort((a, b) => (a.t - b.t) || (a.n - b.n) || (a.i - b.i))
  return all.map(e => e.item)
}

/** Where following goes on from: each node's byte offset, by peer id. Opaque to clients. */
const CursorSchema = z.record(z.string().min(1).max(128), z.number().int().nonnegative())
export type LogCursor = z.infer<typeof CursorSchema>

export class BadCursorError extends Error {
  override name = 'BadCursorError'
}

export function encodeCursor (cursor: LogCursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

export function decodeCursor (text: string): LogCursor {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    parsed = undefined
  }
  const cursor = CursorSchema.safeParse(parsed)
  if (!cursor.success) throw new BadCursorError('cursor is not one this API returned; pass the `cursor` of the previous answer unchanged, or none to start again')
  return cursor.data
}
