import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { OpenApiDocument, type ApiExchange } from '../../node/api/openapi-check.ts'
import { OPENAPI_CHECK_ENV, startApi, type ApiServer } from '../../node/api/server.ts'
import { campaignRoutes, type CampaignApi } from '../../node/campaign/routes.ts'
import { silentLogger } from '../../node/logger.ts'
import { tempDir } from '../helpers.ts'

const STATUS: CampaignStatus = {
  id: 'c-1',
  name: 'sweep',
  state: 'RUNNING',
  priority: 'NORMAL',
  coordinator: '12D3KooWcoordinator',
  createdAt: 1,
  startedAt: 2,
  endedAt: null,
  shards: { total: 10, done: 4, failed: 0, running: 2, leased: 1, pending: 3 },
  progress: 0.4,
  rate: 1.5,
  etaMs: null,
  waiting: null,
  workers: [{ peer: '12D3KooWworker', name: 'w1', done: 4, failed: 0, busyMs: 900 }],
  deadLetters: [],
  runDir: '/var/lib/zp/runs/c-1'
}

let doc: OpenApiDocument
beforeAll(async () => { doc = await OpenApiDocument.load() })

function json (method: string, path: string, status: number, body: unknown): ApiExchange {
  return { method, path, status, contentType: 'application/json; charset=UTF-8', body: JSON.stringify(body) }
}

describe('openapi.yaml', () => {
  it('documents 401 on every operation behind the token', () => {
    const missing = doc.operations()
      .filter(op => op.security.length > 0 && op.responses['401']?.content?.['application/json'] == null)
      .map(op => `${op.method} ${op.path}`)
    expect(doc.operations().length).toBeGreaterThan(10)
    expect(missing).toEqual([])
  })

  it('refuses to load a schema with a key that is not a keyword (a description split by an unquoted comma)', async () => {
    const dir = await tempDir('zp-openapi-')
    try {
      const file = join(dir.path, 'openapi.yaml')
      await writeFile(file, [
        'openapi: 3.1.0',
        'info: { title: t, version: "1" }',
        'paths: {}',
        'components:',
        '  schemas:',
        '    Status:',
        '      type: object',
        '      properties:',
        '        waiting: { type: string, description: why shards wait, e.g. no peer meets the requirements }'
      ].join('\n'))
      await expect(OpenApiDocument.load(file)).rejects.toThrow(/components\/schemas\/Status is not a valid schema: strict mode: unknown keyword: "e.g. no peer/)
    } finally {
      await dir.remove()
    }
  })
})

describe('the response check', () => {
  it('accepts responses the document describes', () => {
    expect(doc.problems(json('GET', '/v1/campaigns/c-1', 200, STATUS))).toEqual([])
    expect(doc.problems(json('GET', '/v1/campaigns', 200, [{ ...STATUS, etaMs: 1200, waiting: 'no free slot', term: 1, replicas: ['p'] }]))).toEqual([])
    expect(doc.problems(json('GET', '/v1/campaigns/c-1/summary', 401, { error: 'unauthorized', message: 'wrong token' }))).toEqual([])
    expect(doc.problems({ method: 'GET', path: '/v1/campaigns/c-1/summary', status: 200, contentType: 'text/markdown; charset=utf-8' })).toEqual([])
    expect(doc.problems({ method: 'GET', path: '/v1/campaigns/c-1/results?format=csv', status: 200, contentType: 'text/csv' })).toEqual([])
    // the token check and the unknown-route answer come before any route
    expect(doc.problems(json('GET', '/v2/nothing', 404, { error: 'not_found', message: 'no route GET /v2/nothing' }))).toEqual([])
  })

  it('rejects a body that does not match, through $refs, nullable types and nested components', () => {
    const { state: _, ...stateless } = STATUS
    expect(doc.problems(json('GET', '/v1/campaigns/c-1', 200, stateless))).toEqual([expect.stringContaining("must have required property 'state'")])
    expect(doc.problems(json('GET', '/v1/campaigns/c-1', 200, { ...STATUS, etaMs: 'soon' }))).toEqual([expect.stringContaining('/etaMs must be number,null')])
    expect(doc.problems(json('GET', '/v1/campaigns/c-1', 200, { ...STATUS, state: 'DONE' }))).toEqual([expect.stringContaining('/state must be equal to one of the allowed values')])
    // a response by $ref (components/responses/Unauthorized) whose schema is a $ref too
    expect(doc.problems(json('POST', '/v1/campaigns/c-1/cancel', 401, { error: 'unauthorized' }))).toEqual([expect.stringContaining("must have required property 'message'")])
    const peer = { peerId: 'p', name: 'a', state: 'alive', reason: '', self: true, connected: true, multiaddrs: [], accelerators: [], slots: { total: 2, free: 2 }, lastSeenMs: 1, stateSince: 1, incarnation: 1 }
    expect(doc.problems(json('GET', '/v1/peers', 200, [{ ...peer, capabilities: null }]))).toEqual([])
    const report = { probedAt: 1, durationMs: 1, host: { hostname: 'h', platform: 'linux', arch: 'x64', cpuModel: 'c', cpuVendor: 'v', cores: 2, physicalCores: 2, memoryBytes: 1 }, capabilities: { 'gpu.nvidia.cuda': { status: 'broken' } } }
    expect(doc.problems(json('GET', '/v1/peers', 200, [{ ...peer, capabilities: report }]))).toContainEqual(expect.stringContaining('/0/capabilities/capabilities/gpu.nvidia.cuda'))
  })

  it('rejects a status, a media type or an operation the document does not list', () => {
    expect(doc.problems(json('GET', '/v1/campaigns/c-1/summary', 418, { error: 'teapot', message: 'no' })))
      .toEqual([expect.stringContaining('answered 418, a status openapi.yaml does not list for GET /v1/campaigns/{id}/summary')])
    expect(doc.problems({ method: 'GET', path: '/v1/campaigns', status: 200, contentType: 'text/plain' }))
      .toEqual([expect.stringContaining('with text/plain; openapi.yaml documents application/json for 200')])
    expect(doc.problems({ method: 'GET', path: '/v1/campaigns', status: 200, contentType: 'application/json', body: '[{' }))
      .toEqual([expect.stringContaining('not JSON')])
    expect(doc.problems(json('DELETE', '/v1/campaigns/c-1', 200, STATUS)))
      .toEqual([expect.stringContaining('openapi.yaml has no DELETE /v1/campaigns/c-1')])
  })
})

describe('the API with ZP_OPENAPI_CHECK set', () => {
  const TOKEN = 'a'.repeat(43)
  let api: ApiServer | undefined
  let dir: { path: string, remove: () => Promise<void> } | undefined
  afterEach(async () => {
    await api?.close()
    await dir?.remove()
    vi.unstubAllEnvs()
  })

  async function serve (routes: Partial<CampaignApi>, extra?: Parameters<typeof startApi>[0]['routes'][number]): Promise<{ call: (method: string, path: string, body?: unknown) => Promise<Response>, violations: () => Promise<Array<{ path: string, status: number, problem: string }>> }> {
    dir = await tempDir('zp-openapi-')
    const file = join(dir.path, 'violations.jsonl')
    vi.stubEnv(OPENAPI_CHECK_ENV, file)
    const unused = async (): Promise<never> => { throw new Error('not used by this test') }
    const stub: CampaignApi = { submit: unused, list: unused, status: unused, cancel: unused, results: unused, summary: unused, resume: unused, auditVerify: unused, ...routes }
    api = await startApi({ host: '127.0.0.1', port: 0, token: TOKEN, log: silentLogger(), routes: [campaignRoutes(stub), ...(extra != null ? [extra] : [])] })
    const url = api.url
    return {
      call: async (method, path, body) => await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined
      }),
      violations: async () => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { path: string, status: number, problem: string })
    }
  }

  it('records a response that does not match, and still sends it unchanged', async () => {
    const { call, violations } = await serve({}, app => { app.get('/v1/peers', c => c.json([{ peerId: 'p' }])) })
    const res = await call('GET', '/v1/peers')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual([{ peerId: 'p' }])
    expect(await violations()).toContainEqual(expect.objectContaining({ path: '/v1/peers', status: 200, problem: expect.stringContaining("/0 must have required property 'name'") }))
  })

  it('answers every documented error as documented: bad paths, bad format, no summary yet, unavailable, internal, no token', async () => {
    const unavailable = Object.assign(new Error('no peer holding c-1 answered: lab-b timed out'), { name: 'UnavailableError' })
    const { call, violations } = await serve({
      results: async () => { throw unavailable },
      summary: async () => null,
      status: async () => { throw new Error('Database is not open') }
    })
    const relative = await call('POST', '/v1/campaigns', { file: 'sweep/campaign.yaml' })
    expect(relative.status).toBe(400)
    expect(await relative.json()).toEqual({ error: 'invalid_request', message: expect.stringMatching(/^file: must be an absolute path: .*the node's working directory, not yours/) })
    const relativeBase = await call('POST', '/v1/campaigns', { spec: { name: 'x' }, baseDir: '.' })
    expect(await relativeBase.json()).toMatchObject({ error: 'invalid_request', message: expect.stringMatching(/^baseDir: must be an absolute path/) })
    expect((await call('GET', '/v1/campaigns/c-1/results?format=xml')).status).toBe(400)
    expect(await (await call('GET', '/v1/campaigns/c-1/results')).json()).toEqual({ error: 'unavailable', message: unavailable.message })
    expect((await call('GET', '/v1/campaigns/c-1/summary')).status).toBe(404)
    expect(await (await call('GET', '/v1/campaigns/c-1')).json()).toEqual({ error: 'internal', message: 'Database is not open' })
    expect((await fetch(`${api!.url}/v1/campaigns/c-1/audit`)).status).toBe(401)
    expect(await violations()).toEqual([])
  })
})
