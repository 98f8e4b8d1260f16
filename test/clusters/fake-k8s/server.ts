import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import { notImplemented, type Api } from './api.ts'
import { discovery, VERSION } from './discovery.ts'
import { ApiError, badRequest, failure, statusFor } from './errors.ts'
import type { LogBook } from './logs.ts'
import { servePodLog } from './pod-log.ts'
import { isResource, RESOURCES, type Resource } from './resources.ts'
import { decode } from './shape.ts'
import type { Store } from './store.ts'
import { serveWatch } from './watch.ts'
import type { DeleteOptions } from './wire.ts'

/**
 * The HTTP side: bearer-token authentication, the one-shot failures a test
 * arms (failNext), discovery, and the REST paths
 * /api/v1/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]] and
 * /apis/batch/v1/…, every failure answered as a Status object.
 */
export interface FailRule { method: string, path: RegExp, code: number, message: string }

export interface ServerDeps {
  store: Store
  api: Api
  logs: LogBook
  token: string
  failures: FailRule[]
}

/** reachable without a token, as the system:public-info-viewer role allows */
const PUBLIC = new Set(['/version', '/healthz', '/livez', '/readyz'])
const MAX_BODY = 3 * 1024 * 1024

interface Route { resource: Resource, namespace?: string, name?: string, sub?: string, watchPrefix: boolean }

export function createApiServer (deps: ServerDeps): { server: Server, closeWatches: () => void } {
  const watches = new Set<() => void>()
  const server = createServer((req, res) => {
    handle(deps, req, res, watches).catch((err: unknown) => {
      const status = err instanceof ApiError ? err : failure(500, `Internal error occurred: fake-k8s: ${err instanceof Error ? err.stack ?? err.message : String(err)}`)
      if (res.headersSent) {
        res.end()
        return
      }
      sendJson(res, status.status.code, status.status)
    })
  })
  return { server, closeWatches: () => { for (const end of [...watches]) end() } }
}

async function handle (deps: ServerDeps, req: IncomingMessage, res: ServerResponse, watches: Set<() => void>): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fake-k8s')
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname
  const method = req.method ?? 'GET'
  if (PUBLIC.has(path) && method === 'GET') {
    if (path === '/version') sendJson(res, 200, VERSION)
    else sendText(res, 200, 'ok')
    return
  }
  if (!authorized(req.headers.authorization, deps.token)) throw failure(401, 'Unauthorized')
  const armed = deps.failures.findIndex(f => f.method.toUpperCase() === method && f.path.test(path))
  if (armed >= 0) {
    const [rule] = deps.failures.splice(armed, 1)
    throw statusFor(method, rule!.code, rule!.message)
  }
  const port = req.socket.localPort ?? 0
  const doc = discovery(path, port)
  if (doc !== undefined) {
    if (method !== 'GET') throw failure(405, 'the server does not allow this method on the requested resource')
    sendJson(res, 200, doc)
    return
  }
  const route = parseRoute(path)
  if (route === undefined) throw failure(404, 'the server could not find the requested resource')
  const query = url.searchParams
  if (query.has('dryRun')) throw badRequest('fake-k8s does not implement dryRun')
  const { resource, namespace, name, sub } = route
  const body = method === 'POST' || method === 'PUT' || method === 'DELETE' ? await readJson(req) : undefined

  if (route.watchPrefix || (name === undefined && method === 'GET' && (query.get('watch') === 'true' || query.get('watch') === '1'))) {
    if (name !== undefined) query.set('fieldSelector', [query.get('fieldSelector'), `metadata.name=${name}`].filter(Boolean).join(','))
    const end = serveWatch(deps.store, { resource, namespace, query }, res, () => { watches.delete(end) })
    watches.add(end)
    return
  }
  if (sub !== undefined) {
    if (resource === 'pods' && sub === 'log' && method === 'GET') servePodLog(deps.store, deps.logs, namespace!, name!, query, res)
    else if (resource === 'pods' && sub === 'eviction' && method === 'POST') sendJson(res, 201, deps.api.evict(namespace!, name!, body))
    else if (sub === 'status' && method === 'GET') sendJson(res, 200, deps.api.get(resource, namespace, name!))
    else throw failure(405, `fake-k8s does not implement ${method} on ${resource}/${sub}`)
    return
  }
  if (name === undefined) {
    // across all namespaces a namespaced resource can only be listed and watched
    if (method !== 'GET' && RESOURCES[resource].namespaced && namespace === undefined) throw failure(405, 'the server does not allow this method on the requested resource')
    if (method === 'GET') sendJson(res, 200, deps.api.list(resource, namespace, query))
    else if (method === 'POST') sendJson(res, 201, deps.api.create(resource, namespace, body))
    else if (method === 'DELETE') sendJson(res, 200, deps.api.deleteCollection(resource, namespace, query, deleteOptions(query, body)))
    else throw notImplemented(method, resource)
    return
  }
  if (method === 'GET') sendJson(res, 200, deps.api.get(resource, namespace, name))
  else if (method === 'PUT') sendJson(res, 200, deps.api.replace(resource, namespace, name, body))
  else if (method === 'DELETE') sendJson(res, 200, deps.api.delete(resource, namespace, name, deleteOptions(query, body)))
  else throw notImplemented(method, resource)
}

function parseRoute (path: string): Route | undefined {
  const m = /^\/(?:api\/v1|apis\/batch\/v1)\/(.+)$/.exec(path)
  if (m === null) return undefined
  const group = path.startsWith('/api/') ? '' : 'batch'
  let segments = m[1]!.split('/').map(decodeURIComponent)
  const watchPrefix = segments[0] === 'watch'
  if (watchPrefix) segments = segments.slice(1)
  let namespace: string | undefined
  if (segments[0] === 'namespaces' && segments.length >= 3) {
    namespace = segments[1]
    segments = segments.slice(2)
  }
  const [resource = '', name, sub, ...extra] = segments
  if (!isResource(resource) || RESOURCES[resource].group !== group || extra.length > 0) return undefined
  const info = RESOURCES[resource]
  if (!info.namespaced && namespace !== undefined) return undefined
  if (info.namespaced && namespace === undefined && name !== undefined) return undefined
  if (sub !== undefined && !Object.hasOwn(info.subresources, sub)) return undefined
  return { resource, ...(namespace === undefined ? {} : { namespace }), ...(name === undefined ? {} : { name }), ...(sub === undefined ? {} : { sub }), watchPrefix }
}

/** query parameters first, then a DeleteOptions body over them */
function deleteOptions (query: URLSearchParams, body: unknown): DeleteOptions {
  const opts: DeleteOptions = {}
  const grace = query.get('gracePeriodSeconds')
  if (grace !== null) opts.gracePeriodSeconds = Number(grace)
  const policy = query.get('propagationPolicy')
  if (policy !== null) opts.propagationPolicy = policy as DeleteOptions['propagationPolicy']
  const orphan = query.get('orphanDependents')
  if (orphan !== null) opts.orphanDependents = orphan === 'true'
  if (body !== undefined) {
    decode('DeleteOptions', body)
    Object.assign(opts, body)
  }
  if (opts.propagationPolicy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(opts.propagationPolicy)) {
    throw failure(422, `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${String(opts.propagationPolicy)}": supported values: "Foreground", "Background", "Orphan", "nil"`, 'Invalid')
  }
  if (opts.gracePeriodSeconds !== undefined && (!Number.isInteger(opts.gracePeriodSeconds) || opts.gracePeriodSeconds < 0)) throw badRequest(`invalid gracePeriodSeconds: ${String(opts.gracePeriodSeconds)}`)
  return opts
}

function authorized (header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '')
  if (m === null) return false
  const given = Buffer.from(m[1]!)
  const want = Buffer.from(token)
  return given.length === want.length && timingSafeEqual(given, want)
}

async function readJson (req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw failure(413, 'Request entity too large: limit is 3145728')
    chunks.push(chunk as Buffer)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return undefined
  const type = req.headers['content-type'] ?? 'application/json'
  if (!/json/.test(type)) throw failure(415, `the body of the request was in an unknown format - accepted media types include: application/json (fake-k8s reads JSON only; got ${type})`)
  try {
    return JSON.parse(text)
  } catch (err) {
    throw badRequest(`the object provided is unrecognized: couldn't get version/kind; json parse error: ${(err as Error).message}`)
  }
}

function sendJson (res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' })
  res.end(text)
}

function sendText (res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}
