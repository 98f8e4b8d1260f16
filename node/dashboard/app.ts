import { open } from 'node:fs/promises'
import { Hono, type Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { stream, streamSSE } from 'hono/streaming'
import type { Logger } from 'pino'
import type { CampaignApi } from '../campaign/routes.ts'
import type { PeerJson } from '../api/routes.ts'
import type { ApiRoutes } from '../api/server.ts'
import { asset } from './assets.ts'
import { campaignBody, campaignLive, campaignsTable, type AcceleratorsOf } from './campaign.ts'
import { html, type Html } from './html.ts'
import { page, unauthorizedPage } from './layout.ts'
import { meshTable } from './mesh.ts'
import { nodeBody } from './node-page.ts'
import { DashboardLogins, SESSION_TTL_MS, type DashboardSession } from './sessions.ts'

export const SESSION_COOKIE = 'zp_session'
/** how often the live parts are sent again */
const PUSH_MS = 1000
const LOG_TAIL_BYTES = 64 * 1024
const LOG_TAIL_LINES = 100

/** What the dashboard reads: the same sources as the /v1 routes. */
export interface DashboardSource {
  nodeName: () => string
  peers: () => Promise<PeerJson[]>
  campaigns: CampaignApi
  info: () => Record<string, unknown>
  logFile: string
  log: Logger
  /** the node's lifetime: live streams end with it */
  signal: AbortSignal
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store'
}

async function logTail (file: string): Promise<string[] | null> {
  let fh
  try {
    fh = await open(file, 'r')
  } catch {
    return null
  }
  try {
    const { size } = await fh.stat()
    const start = Math.max(0, size - LOG_TAIL_BYTES)
    const buf = Buffer.alloc(size - start)
    await fh.read(buf, 0, buf.length, start)
    const lines = buf.toString('utf8').split('\n').filter(l => l.trim() !== '')
    // a cut first line is not shown half
    return (start > 0 ? lines.slice(1) : lines).slice(-LOG_TAIL_LINES)
  } finally {
    await fh.close()
  }
}

/**
 * The web dashboard under /ui/ on the API's address: server-rendered pages,
 * live parts pushed as HTML fragments over server-sent events (htmx swaps
 * them in). A session comes from a one-time ticket that `zp dashboard` gets
 * with the API token (POST /v1/dashboard/login-tickets).
 */
export class Dashboard {
  readonly logins: DashboardLogins
  readonly app = new Hono()
  readonly #src: DashboardSource

  constructor (src: DashboardSource, logins = new DashboardLogins()) {
    this.#src = src
    this.logins = logins
    this.#routes()
  }

  /** POST /v1/dashboard/login-tickets, behind the API token like every /v1 route. */
  apiRoutes (): ApiRoutes {
    return (app) => {
      app.post('/v1/dashboard/login-tickets', c => {
        const { ticket, expiresAt } = this.logins.issueTicket()
        return c.json({ ticket, expiresAt, path: `/ui/login?ticket=${ticket}` }, 201)
      })
    }
  }

  #html (c: Context, body: Html, status: 200 | 401 | 404 | 409 | 503 = 200): Response {
    return c.html(body.text, status)
  }

  #refuse (c: Context, why: string): Response {
    return this.#html(c, unauthorizedPage(this.#src.nodeName(), why), 401)
  }

  #routes (): void {
    const app = this.app
    const src = this.#src
    app.use('*', async (c, next) => {
      await next()
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(k, v)
    })
    app.get('/ui/assets/:name', async c => {
      const found = await asset(c.req.param('name'))
      if (found == null) return c.text('no such asset', 404)
      return c.body(new Uint8Array(found.body), 200, { 'content-type': found.type })
    })
    app.get('/ui/login', c => {
      const session = this.logins.redeem(c.req.query('ticket'))
      if (session == null) return this.#refuse(c, 'This login link was used already or has expired (links work once, for a minute).')
      setCookie(c, SESSION_COOKIE, session.id, { httpOnly: true, sameSite: 'Strict', path: '/ui', maxAge: Math.floor(SESSION_TTL_MS / 1000) })
      return c.redirect('/ui/', 303)
    })
    app.use('/ui/*', async (c, next) => {
      const session = this.logins.session(getCookie(c, SESSION_COOKIE))
      if (session == null) return this.#refuse(c, getCookie(c, SESSION_COOKIE) == null ? 'You are not logged in to this node\'s dashboard.' : 'Your dashboard session is not valid (expired, or the node restarted).')
      if (c.req.method !== 'GET' && !this.logins.csrfMatches(session, c.req.header('x-csrf-token'))) {
        return this.#refuse(c, 'The request did not carry this session\'s CSRF token; reload the page and try again.')
      }
      c.set('session' as never, session as never)
      await next()
    })
    const session = (c: Context): DashboardSession => c.get('session' as never) as DashboardSession
    const shell = (c: Context, title: string, section: 'mesh' | 'campaigns' | 'node', body: Html, charts = false): Response =>
      this.#html(c, page({ title, section, nodeName: src.nodeName(), csrf: session(c).csrf, body, charts }))

    const acceleratorsOf = async (): Promise<AcceleratorsOf> => new Map((await src.peers()).map(p => [p.peerId, p.accelerators.join(', ') || 'cpu']))

    app.get('/ui', c => c.redirect('/ui/', 301))
    app.get('/ui/', async c => shell(c, 'Mesh', 'mesh', html`<div hx-ext="sse" sse-connect="/ui/events/mesh"><div sse-swap="mesh" aria-live="off">${meshTable(await src.peers())}</div></div>`))
    app.get('/ui/campaigns', async c => shell(c, 'Campaigns', 'campaigns', html`<div hx-ext="sse" sse-connect="/ui/events/campaigns"><div sse-swap="campaigns" aria-live="off">${campaignsTable(await src.campaigns.list())}</div></div>`))
    app.get('/ui/node', async c => shell(c, 'This node', 'node', nodeBody(src.info(), { file: src.logFile, lines: await logTail(src.logFile) })))
    app.get('/ui/campaigns/:id', async c => {
      const status = await src.campaigns.status(c.req.param('id'))
      if (status == null) return this.#html(c, page({ title: 'No such campaign', section: 'campaigns', nodeName: src.nodeName(), body: html`<p>No campaign ${c.req.param('id')} on this node or its live peers.</p>` }), 404)
      return shell(c, `Campaign ${status.name}`, 'campaigns', campaignBody(status, Date.now(), await acceleratorsOf()), true)
    })

    app.get('/ui/events/mesh', c => this.#live(c, 'mesh', async () => meshTable(await src.peers())))
    app.get('/ui/events/campaigns', c => this.#live(c, 'campaigns', async () => campaignsTable(await src.campaigns.list())))
    app.get('/ui/events/campaigns/:id', c => this.#live(c, 'campaign', async () => {
      const status = await src.campaigns.status(c.req.param('id'))
      return status == null ? html`<p role="alert">The campaign is not known on this node or its live peers now.</p>` : campaignLive(status, Date.now(), await acceleratorsOf())
    }))

    app.post('/ui/campaigns/:id/cancel', async c => {
      const status = await src.campaigns.cancel(c.req.param('id'))
      return this.#html(c, status == null
        ? html`<p>Not cancelled: this node does not coordinate the campaign; open the dashboard of its coordinator's node.</p>`
        : html`<p>${status.state}: ${status.shards.done} of ${status.shards.total} shards done and kept.</p>`)
    })
    app.post('/ui/campaigns/:id/resume', async c => {
      try {
        const status = await src.campaigns.resume(c.req.param('id'))
        return this.#html(c, status == null ? html`<p>Not resumed: this node does not coordinate the campaign.</p>` : html`<p>Resumed: ${status.state}.</p>`)
      } catch (err) {
        if ((err as Error).name === 'InvalidMessageError') return this.#html(c, html`<p>Not resumed: ${(err as Error).message}</p>`)
        throw err
      }
    })
    app.get('/ui/campaigns/:id/audit', async c => {
      const v = await src.campaigns.auditVerify(c.req.param('id'))
      return this.#html(c, v == null
        ? html`<p>No audit trail here: audit checks run on the campaign's coordinator node.</p>`
        : v.ok ? html`<p>Audit trail intact: ${v.records} records (head <code>${v.head.slice(0, 16)}…</code>).</p>`
          : html`<p role="alert">Audit trail TAMPERED at line ${v.problem?.line}: ${v.problem?.reason} (${v.records} records verified before it).</p>`)
    })
    app.get('/ui/campaigns/:id/summary', async c => {
      // summary.html is the coordinator's own page (charts included): shown as it is
      const summary = await src.campaigns.summary(c.req.param('id'), 'html')
      if (summary != null) return c.html(summary)
      return shell(c, 'Summary', 'campaigns', html`<p>No summary yet: it is written when the campaign ends.</p>`)
    })
    app.get('/ui/campaigns/:id/results', async c => {
      const id = c.req.param('id')
      const format = c.req.query('format') === 'csv' ? 'csv' : 'jsonl'
      const answer = await src.campaigns.results(id, format, { partial: c.req.query('partial') === 'true' })
      if (answer == null) return c.text(`no campaign ${id} on this node or its live peers`, 404)
      c.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      c.header('content-disposition', `attachment; filename="${id.replace(/[^\w.-]/g, '_')}.${format}"`)
      return stream(c, async s => {
        for await (const chunk of answer.rows) await s.write(chunk)
      })
    })
    app.notFound(c => this.#html(c, page({ title: 'Not found', nodeName: src.nodeName(), body: html`<p>Nothing at ${c.req.path}. <a href="/ui/">Back to the mesh</a></p>` }), 404))
    app.onError((err, c) => {
      src.log.error({ err: err.message, path: c.req.path }, 'dashboard request failed')
      return this.#html(c, page({ title: 'Error', nodeName: src.nodeName(), body: html`<p role="alert">${err.message}</p>` }), 503)
    })
  }

  /** Sends `render()` as event `event` every PUSH_MS until the browser leaves or the node stops. */
  #live (c: Context, event: string, render: () => Promise<Html>): Response {
    const { signal, log } = this.#src
    return streamSSE(c, async s => {
      let id = 0
      while (!s.aborted && !s.closed && !signal.aborted) {
        let data: Html
        try {
          data = await render()
        } catch (err) {
          log.warn({ err: (err as Error).message, event }, 'dashboard update failed')
          data = html`<p role="alert">Could not update: ${(err as Error).message}</p>`
        }
        await s.writeSSE({ event, data: data.text, id: String(id++) })
        await s.sleep(PUSH_MS)
      }
    })
  }
}
