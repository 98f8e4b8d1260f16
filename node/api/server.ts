import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { Hono, type Context, type Next } from 'hono'
import { createAdaptorServer } from '@hono/node-server'
import type { Logger } from 'pino'
import { tokenMatches } from './token.ts'

export const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost'])

export class ApiAddressError extends Error {
  override name = 'ApiAddressError'
}

/** `HOST:PORT` for --api; loopback only (the API is the node's local control plane). */
export function parseApiAddress (text: string): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text.trim())
  const port = Number(m?.[3])
  if (m == null || port > 65535) throw new ApiAddressError(`invalid --api '${text}'; expected HOST:PORT such as 127.0.0.1:7070 (port 0 picks a free one)`)
  const host = m[1] ?? m[2]!
  if (!LOOPBACK_HOSTS.has(host)) {
    throw new ApiAddressError(`--api must listen on loopback (127.0.0.1, ::1 or localhost), not '${host}': the control API is for this machine; reach it from elsewhere through SSH`)
  }
  return { host, port }
}

/**
 * Every request body of the API is JSON: one that is not gets a 400 saying
 * so here, for every route, instead of a schema message from the route that
 * read it. The text stays cached, so a route's `c.req.json()` parses it again.
 */
async function jsonBodies (c: Context, next: Next): Promise<Response | undefined> {
  if (c.req.method === 'GET' || c.req.method === 'HEAD') {
    await next()
    return
  }
  const text = await c.req.text()
  if (text.trim() !== '') {
    try {
      JSON.parse(text)
    } catch (err) {
      return c.json({ error: 'invalid_request', message: `the request body is not valid JSON (${(err as Error).message}); send a JSON document with content-type: application/json` }, 400)
    }
  }
  await next()
}

/** Names a file: the API then appends one JSON line to it per response that openapi.yaml does not describe (tests set it). */
export const OPENAPI_CHECK_ENV = 'ZP_OPENAPI_CHECK'

export interface ApiRoutes {
  /** mounts routes on the app; every route is behind the token check */
  (app: Hono): void
}

/** The web dashboard (node/dashboard/): every path under /ui goes to it, with its own session check. */
export interface UiApp {
  fetch: (req: Request) => Response | Promise<Response>
}

export interface ApiServer {
  url: string
  close: () => Promise<void>
}

/**
 * The control API: JSON over HTTP on loopback, every request checked against
 * the bearer token in the data dir. Routes are mounted by the caller.
 */
export async function startApi (opts: { host: string, port: number, token: string, log: Logger, routes: ApiRoutes[], ui?: UiApp }): Promise<ApiServer> {
  const app = new Hono()
  const checkFile = process.env[OPENAPI_CHECK_ENV]
  // first, so that it sees every answer (401s and 500s too); imported only here: ajv is a dev dependency
  if (checkFile != null && checkFile !== '') app.use('*', await (await import('./openapi-check.ts')).openApiCheck(checkFile, opts.log))
  app.use('*', async (c, next) => {
    if (!tokenMatches(opts.token, c.req.header('authorization'))) {
      return c.json({ error: 'unauthorized', message: 'missing or wrong bearer token; send "Authorization: Bearer <token>" with the token from <data-dir>/api-token' }, 401)
    }
    await next()
  })
  app.use('*', jsonBodies)
  for (const mount of opts.routes) mount(app)
  app.notFound(c => c.json({ error: 'not_found', message: `no route ${c.req.method} ${c.req.path}` }, 404))
  app.onError((err, c) => {
    opts.log.error({ err: err.message, path: c.req.path }, 'control API request failed')
    return c.json({ error: 'internal', message: err.message }, 500)
  })
  const ui = opts.ui
  // the dashboard's pages answer with HTML and check a session cookie instead of the bearer token
  const fetch = ui == null ? app.fetch : (req: Request): Response | Promise<Response> => /^\/ui(?:\/|$)/.test(new URL(req.url).pathname) ? ui.fetch(req) : app.fetch(req)
  const server = createAdaptorServer({ fetch }) as Server
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE'
        ? new ApiAddressError(`control API port ${opts.host}:${opts.port} is in use; pick another with --api ${opts.host}:PORT (0 picks a free one)`)
        : err)
    })
    server.listen(opts.port, opts.host, () => { resolve() })
  })
  const { port } = server.address() as AddressInfo
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  return {
    url: `http://${host}:${port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}
