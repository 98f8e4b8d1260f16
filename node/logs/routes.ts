import type { Hono } from 'hono'
import { z } from 'zod'
import { summarizeIssues } from '../../protocols/common/validate.ts'
import { queryMeshLogs, UnknownNodeError, type LogPorts } from './mesh.ts'
import { BadCursorError, decodeCursor, DEFAULT_LIMIT, encodeCursor, LEVELS, MAX_LIMIT, type LevelName } from './query.ts'

const wholeNumber = (what: string) => z.string().regex(/^\d{1,15}$/, { message: `${what} must be a whole number` }).transform(Number)

/** `GET /v1/logs` query parameters: all optional. */
export const LogsParamsSchema = z.object({
  campaign: z.string().regex(/^c-[a-z0-9]{6,40}$/, { message: 'campaign must be a campaign id like c-…' }).optional(),
  shard: wholeNumber('shard').optional(),
  node: z.string().min(1).max(256).optional(),
  since: wholeNumber('since (epoch ms)').optional(),
  level: z.enum(Object.keys(LEVELS) as [LevelName, ...LevelName[]]).optional(),
  limit: wholeNumber('limit').pipe(z.number().int().min(1).max(MAX_LIMIT)).optional(),
  cursor: z.string().max(64 * 1024).optional()
}).strict()

/** `GET /v1/logs`: the mesh's log lines, merged in time order (see openapi.yaml). */
export function logRoutes (ports: LogPorts) {
  return (app: Hono): void => {
    app.get('/v1/logs', async c => {
      const params = LogsParamsSchema.safeParse(c.req.query())
      const bad = (message: string): Response => c.json({ error: 'invalid_request', message }, 400)
      if (!params.success) return bad(summarizeIssues(params.error))
      const p = params.data
      try {
        const answer = await queryMeshLogs(ports, {
          limit: p.limit ?? DEFAULT_LIMIT,
          ...(p.campaign != null ? { campaign: p.campaign } : {}),
          ...(p.shard != null ? { shard: p.shard } : {}),
          ...(p.since != null ? { sinceMs: p.since } : {}),
          ...(p.level != null ? { level: LEVELS[p.level] } : {}),
          ...(p.node != null ? { node: p.node } : {}),
          ...(p.cursor != null ? { cursor: decodeCursor(p.cursor) } : {})
        }, c.req.raw.signal)
        return c.json({ ...answer, cursor: encodeCursor(answer.cursor) })
      } catch (err) {
        if (err instanceof UnknownNodeError || err instanceof BadCursorError) return bad(err.message)
        throw err
      }
    })
  }
}
