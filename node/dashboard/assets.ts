import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

/** Everything the pages load, from the package's own files (no CDN: the dashboard works offline). */
const ASSETS: Record<string, { path: () => string, type: string }> = {
  'htmx.min.js': { path: () => require.resolve('htmx.org/dist/htmx.min.js'), type: 'text/javascript; charset=utf-8' },
  'sse.js': { path: () => require.resolve('htmx-ext-sse/dist/sse.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.iife.min.js': { path: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { path: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
  'dashboard.js': { path: () => fileURLToPath(new URL('./static/dashboard.js', import.meta.url)), type: 'text/javascript; charset=utf-8' },
  'dashboard.css': { path: () => fileURLToPath(new URL('./static/dashboard.css', import.meta.url)), type: 'text/css; charset=utf-8' }
}

const cache = new Map<string, Promise<Buffer>>()

/** An asset's bytes and media type; null for a name that is not one. */
export async function asset (name: string): Promise<{ body: Buffer, type: string } | null> {
  const entry = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined
  if (entry == null) return null
  let body = cache.get(name)
  if (body == null) {
    body = readFile(entry.path())
    cache.set(name, body)
    body.catch(() => cache.delete(name))
  }
  return { body: await body, type: entry.type }
}
