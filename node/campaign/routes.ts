import { isAbsolute } from 'node:path'
import type { Hono } from 'hono'
import { stream } from 'hono/streaming'
import { z } from 'zod'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { summarizeIssues } from '../../protocols/common/validate.ts'
import { BurstSchema, DetachedSchema } from '../../protocols/bridge/schema.ts'
import type { SummaryFormat } from '../../protocols/campaign/replica.ts'
import type { AuditVerdict } from '../../actors/coordinator/audit.ts'
import type { ExportFormat } from './export.ts'
import type { ResultsAnswer } from './lookup.ts'

/** What the REST routes need from the node's campaign service. */
export interface CampaignApi {
  submit: (body: SubmitBody) => Promise<CampaignStatus>
  list: () => Promise<CampaignStatus[]>
  status: (id: string) => Promise<CampaignStatus | null>
  cancel: (id: string) => Promise<CampaignStatus | null>
  /** null when the campaign is unknown here; one that has not succeeded only with `partial` (else NotEndedError) */
  results: (id: string, format: ExportFormat, opts?: { partial?: boolean }) => Promise<ResultsAnswer | null>
  /** summary.md (or summary.html, with charts) once the campaign has ended; null when unknown or not ended */
  summary: (id: string, format: SummaryFormat) => Promise<string | null>
  resume: (id: string) => Promise<CampaignStatus | null>
  auditVerify: (id: string) => Promise<AuditVerdict | null>
}

/** The node's working directory is not the caller's, so a relative path would name a file the user did not mean. */
const AbsolutePathSchema = z.string().min(1).refine(isAbsolute, {
  message: 'must be an absolute path: a relative one would be read from the node\'s working directory, not yours'
})

/**
 * A campaign file on this machine (what `zp submit` sends), or the spec as
 * JSON with the folder its relative paths start from (any script).
 */
/** What a submit may add to the campaign file: burst capacity (zp submit --burst), or detached Slurm (zp submit --on slurm). */
const SubmitExtras = {
  /** values of a template's parameters */
  params: z.record(z.string().max(64), z.union([z.string().max(4096), z.number(), z.boolean()])).optional(),
  burst: BurstSchema.optional(),
  /** sharedDir absent: the node's default (ZP_SHARED_DIR, else <data-dir>/detached) */
  detached: DetachedSchema.extend({ sharedDir: AbsolutePathSchema.optional() }).optional()
}

export const SubmitBodySchema = z.union([
  z.object({ file: AbsolutePathSchema, ...SubmitExtras }).strict(),
  z.object({ spec: z.record(z.string(), z.unknown()), baseDir: AbsolutePathSchema, ...SubmitExtras }).strict()
], { message: 'expected {"file": "/path/to/campaign.yaml"} or {"spec": {...}, "baseDir": "/path"}' })
export type SubmitBody = z.infer<typeof SubmitBodySchema>

const FormatSchema = z.enum(['jsonl', 'csv'])
const SummaryFormatSchema = z.enum(['md', 'html'])
const PartialSchema = z.enum(['true', 'false'])

export function campaignRoutes (api: CampaignApi) {
  return (app: Hono): void => {
    app.post('/v1/campaigns', async c => {
      const body = SubmitBodySchema.safeParse(await c.req.json().catch(() => undefined))
      if (!body.success) return c.json({ error: 'invalid_request', message: summarizeIssues(body.error) }, 400)
      try {
        return c.json(await api.submit(body.data), 201)
      } catch (err) {
        if ((err as Error).name === 'CampaignFileError') return c.json({ error: 'invalid_campaign', message: (err as Error).message }, 400)
        return unavailable(c, err)
      }
    })
    app.get('/v1/campaigns', async c => c.json(await api.list()))
    app.get('/v1/campaigns/:id', async c => {
      const status = await api.status(c.req.param('id'))
      return status == null ? notFound(c, c.req.param('id'), 'mesh') : c.json(status)
    })
    app.post('/v1/campaigns/:id/cancel', async c => {
      const status = await api.cancel(c.req.param('id'))
      return status == null ? notFound(c, c.req.param('id')) : c.json(status)
    })
    app.post('/v1/campaigns/:id/resume', async c => {
      try {
        const status = await api.resume(c.req.param('id'))
        return status == null ? notFound(c, c.req.param('id')) : c.json(status)
      } catch (err) {
        if ((err as Error).name === 'InvalidMessageError') return c.json({ error: 'conflict', message: (err as Error).message }, 409)
        throw err
      }
    })
    app.get('/v1/campaigns/:id/audit', async c => {
      try {
        const verdict = await api.auditVerify(c.req.param('id'))
        return verdict == null ? notFound(c, c.req.param('id'), 'mesh') : c.json(verdict)
      } catch (err) {
        return unavailable(c, err)
      }
    })
    app.get('/v1/campaigns/:id/summary', async c => {
      const format = SummaryFormatSchema.safeParse(c.req.query('format') ?? 'md')
      if (!format.success) return c.json({ error: 'invalid_request', message: 'format must be md or html' }, 400)
      let text: string | null
      try {
        text = await api.summary(c.req.param('id'), format.data)
      } catch (err) {
        return unavailable(c, err)
      }
      if (text == null) return c.json({ error: 'not_found', message: `no summary${format.data === 'html' ? '.html' : ''} for ${c.req.param('id')} yet: a summary is written when a campaign ends (or the campaign is unknown on this node and its live peers; a campaign that ended before reports had charts has no summary.html)` }, 404)
      if (format.data === 'md') {
        c.header('content-type', 'text/markdown; charset=utf-8')
        return c.body(text)
      }
      // the page needs nothing but its own inline styles: anything else it might name is refused by the browser
      c.header('content-type', 'text/html; charset=utf-8')
      c.header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
      return c.body(text)
    })
    app.get('/v1/campaigns/:id/results', async c => {
      const format = FormatSchema.safeParse(c.req.query('format') ?? 'jsonl')
      if (!format.success) return c.json({ error: 'invalid_request', message: 'format must be jsonl or csv' }, 400)
      const partial = PartialSchema.safeParse(c.req.query('partial') ?? 'false')
      if (!partial.success) return c.json({ error: 'invalid_request', message: 'partial must be true or false' }, 400)
      let answer: ResultsAnswer | null
      try {
        answer = await api.results(c.req.param('id'), format.data, { partial: partial.data === 'true' })
      } catch (err) {
        if ((err as Error).name === 'NotEndedError') return c.json({ error: 'not_ended', message: (err as Error).message }, 409)
        return unavailable(c, err)
      }
      if (answer == null) return notFound(c, c.req.param('id'), 'mesh')
      const rows = answer.rows
      c.header('content-type', format.data === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      // what the rows are of: a client says so when they are not the whole result
      c.header('x-zp-state', answer.state)
      c.header('x-zp-shards', `${answer.done}/${answer.total}`)
      if (answer.stale) c.header('x-zp-stale', 'true')
      return stream(c, async s => {
        for await (const chunk of rows) await s.write(chunk)
      })
    })
  }
}

/** 503 for an UnavailableError (the node or its peers cannot do it now); anything else is rethrown. */
function unavailable (c: { json: (body: unknown, status: 503) => Response }, err: unknown): Response {
  if ((err as Error).name === 'UnavailableError') return c.json({ error: 'unavailable', message: (err as Error).message }, 503)
  throw err
}

/** `mesh`: the lookup asked the live peers too (status, results); else only this node's coordinator was asked. */
function notFound (c: { json: (body: unknown, status: 404) => Response }, id: string, where: 'node' | 'mesh' = 'node'): Response {
  const scope = where === 'mesh' ? 'on this node or its live peers' : 'coordinated by this node (cancel, resume and audit work on the coordinator\'s node)'
  return c.json({ error: 'not_found', message: `no campaign ${id} ${scope}; 'zp runs' lists the campaigns this node coordinates` }, 404)
}
