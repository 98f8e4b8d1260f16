import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Hono } from 'hono'
import type { Logger } from 'pino'
import type { NodeMetrics } from './metrics.ts'

export class MetricsAddressError extends Error {
  override name = 'MetricsAddressError'
}

/**
 * `HOST:PORT` for --metrics. Any host: the listener serves metrics without a
 * token, for a scraper on the overlay or this machine; never a public address.
 */
export function parseMetricsAddress (text: string): { host: string, port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text.trim())
  const port = Number(m?.[3])
  if (m == null || port > 65535) {
    throw new MetricsAddressError(`invalid --metrics '${text}'; expected HOST:PORT such as 127.0.0.1:9464 or the node's overlay address (port 0 picks a free one)`)
  }
  return { host: m[1] ?? m[2]!, port }
}

/** `GET /metrics` on the control API (behind its bearer token, like every route there). */
export function metricsRoute (metrics: NodeMetrics) {
  return (app: Hono): void => {
    app.get('/metrics', async c => c.body(await metrics.text(), 200, { 'content-type': metrics.contentType }))
  }
}

export interface MetricsListener {
  url: string
  close: () => Promise<void>
}

/**
 * A plain HTTP listener serving only `GET /metrics`, without the API token,
 * for Prometheus: bind it to loopback or the overlay (WireGuard) address.
 */
export async function startMetricsListener (opts: { host: string, port: number, metrics: NodeMetrics, log: Logger }): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('only GET /metrics is served here\n')
      return
    }
    opts.metrics.text().then(body => {
      res.writeHead(200, { 'content-type': opts.metrics.contentType }).end(req.method === 'HEAD' ? undefined : body)
    }, (err: unknown) => {
      opts.log.error({ err: (err as Error).message }, 'collecting metrics failed')
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`collecting metrics failed: ${(err as Error).message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' || err.code === 'EADDRNOTAVAIL'
        ? new MetricsAddressError(`cannot listen for metrics on ${opts.host}:${opts.port} (${err.code}); pick another address with --metrics HOST:PORT (port 0 picks a free one)`)
        : err)
    })
    server.listen(opts.port, opts.host, () => { resolve() })
  })
  const { port } = server.address() as AddressInfo
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host
  const url = `http://${host}:${port}/metrics`
  opts.log.info({ url }, 'serving Prometheus metrics without a token')
  return {
    url,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}
