import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startApi, type ApiServer } from '../../node/api/server.ts'
import { healthJson, nodeRoutes } from '../../node/api/routes.ts'
import type { GcReport } from '../../node/blobs/gc.ts'
import { silentLogger } from '../../node/logger.ts'

const TOKEN = 't0ken'
let api: ApiServer
let joining = [{ address: '/ip4/10.9.9.9/tcp/4170', attempts: 3, lastError: 'connect ECONNREFUSED 10.9.9.9:4170' }]
const gcRuns: Array<{ dryRun?: boolean }> = []
const gc = {
  run: async (opts: { dryRun?: boolean } = {}): Promise<GcReport> => {
    gcRuns.push(opts)
    return { dryRun: opts.dryRun === true, retentionMs: 0, removed: { blobs: 2, bytes: 30 }, kept: { blobs: 1, bytes: 5 } }
  }
}

beforeAll(async () => {
  api = await startApi({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    log: silentLogger(),
    routes: [
      nodeRoutes({ state: 'running', joining: () => joining, info: () => ({}), peers: async () => [], gc }),
      (app) => {
        app.post('/v1/things', async c => c.json({ got: await c.req.json().catch(() => 'no body') }, 201))
        app.post('/v1/things/:id/poke', c => c.json({ poked: c.req.param('id') }))
      }
    ]
  })
})
afterAll(async () => { await api.close() })

async function post (path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(api.url + path, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, ...headers }, body })
  return { status: res.status, json: await res.json() as Record<string, unknown> }
}

describe('control API request bodies', () => {
  it('answers a body that is not JSON with a 400 that says so, whatever the route or content type', async () => {
    const contentTypes: Array<Record<string, string>> = [{ 'content-type': 'application/json' }, { 'content-type': 'application/x-www-form-urlencoded' }, {}]
    for (const headers of contentTypes) {
      const r = await post('/v1/things', '{not json', headers)
      expect(r.status).toBe(400)
      expect(r.json.error).toBe('invalid_request')
      expect(r.json.message).toMatch(/^the request body is not valid JSON \(.+\); send a JSON document/)
    }
    expect((await post('/v1/things/7/poke', '[1, 2')).json.message).toMatch(/not valid JSON/)
  })

  it('passes JSON bodies and empty ones on to the route, and checks the token first', async () => {
    expect(await post('/v1/things', '{"a": [1, 2]}', { 'content-type': 'application/json' })).toEqual({ status: 201, json: { got: { a: [1, 2] } } })
    expect(await post('/v1/things/7/poke')).toEqual({ status: 200, json: { poked: '7' } })
    const anonymous = await fetch(api.url + '/v1/things', { method: 'POST', body: '{not json' })
    expect(anonymous.status).toBe(401)
  })
})

describe('GET /v1/health', () => {
  it('says joining, with the reason and each bootstrap address tried, until a bootstrap answers; then ok', async () => {
    const get = async (): Promise<unknown> => await (await fetch(api.url + '/v1/health', { headers: { authorization: `Bearer ${TOKEN}` } })).json()
    expect(await get()).toEqual({
      status: 'joining',
      state: 'running',
      reason: expect.stringMatching(/^not in the mesh yet: no bootstrap peer has answered and no other peer is connected \(3 attempts so far; still retrying\)/),
      bootstrap: joining
    })
    joining = []
    expect(await get()).toEqual({ status: 'ok', state: 'running' })
  })

  it('gives the lifecycle state of a node that is not running, joined or not', () => {
    expect(healthJson('draining', [])).toEqual({ status: 'draining', state: 'draining' })
    expect(healthJson('stopping', [{ address: '/ip4/10.0.0.1/tcp/1', attempts: 0, lastError: null }])).toEqual({ status: 'stopping', state: 'stopping' })
  })
})

describe('POST /v1/node/gc', () => {
  it('collects with an empty body or {"dryRun": true}, and refuses any other body with a 400 naming the field', async () => {
    expect(await post('/v1/node/gc')).toEqual({ status: 200, json: { dryRun: false, retentionMs: 0, removed: { blobs: 2, bytes: 30 }, kept: { blobs: 1, bytes: 5 } } })
    expect((await post('/v1/node/gc', '{"dryRun": true}')).json.dryRun).toBe(true)
    expect(gcRuns).toEqual([{ dryRun: undefined }, { dryRun: true }])
    const bad = await post('/v1/node/gc', '{"dryrun": true}')
    expect(bad.status).toBe(400)
    expect(bad.json).toEqual({ error: 'invalid_request', message: expect.stringContaining('dryrun') })
    expect(gcRuns).toHaveLength(2)
  })
})
