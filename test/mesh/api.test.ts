import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { resolveApiTarget, type ApiTarget } from '../../node/api/client.ts'
import { OPENAPI_CHECK_ENV } from '../../node/api/server.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { SQUARES } from './campaigns.ts'
import { createMesh, type Mesh } from './harness.ts'

/*
 * Every route of a real node, called as a script would, with the node's API
 * checking each answer against node/api/openapi.yaml (ZP_OPENAPI_CHECK).
 */

let mesh: Mesh
let target: ApiTarget
let scratch: { path: string, remove: () => Promise<void> }

beforeAll(async () => {
  scratch = await tempDir('zp-api-check-')
  vi.stubEnv(OPENAPI_CHECK_ENV, join(scratch.path, 'violations.jsonl'))
  mesh = await createMesh()
  const node = await mesh.start({ api: { host: '127.0.0.1', port: 0 } })
  target = await resolveApiTarget({ dataDir: node.dataDir })
})

afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
  vi.unstubAllEnvs()
})

async function call (method: string, path: string, opts: { body?: unknown, token?: string } = {}): Promise<{ status: number, type: string | null, body: unknown }> {
  const res = await fetch(target.url + path, {
    method,
    headers: { authorization: `Bearer ${opts.token ?? target.token}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    signal: AbortSignal.timeout(30_000)
  })
  const type = res.headers.get('content-type')
  const text = await res.text()
  return { status: res.status, type, body: type?.startsWith('application/json') === true ? JSON.parse(text) : text }
}

describe('the control API of a real node', () => {
  it('answers every route as openapi.yaml says', async () => {
    expect(await call('GET', '/v1/health')).toMatchObject({ status: 200, body: { status: 'ok' } })
    const node = await call('GET', '/v1/node')
    expect(node).toMatchObject({ status: 200, body: { peerId: mesh.nodes[0]!.peerId, capabilities: { host: { hostname: 'test' } } } })
    expect(await call('GET', '/v1/peers')).toMatchObject({ status: 200, body: [{ self: true }] })
    expect(await call('GET', '/v1/peers', { token: 'wrong' })).toMatchObject({ status: 401, body: { error: 'unauthorized' } })

    const file = join(scratch.path, 'api.json')
    await copyFile(SQUARES, join(scratch.path, 'squares.mjs'))
    await writeFile(file, JSON.stringify({ name: 'api', workload: { kind: 'module', module: 'squares.mjs' }, replicas: 0, shards: { iterations: { total: 20, perShard: 5, seed: 2 } } }))
    expect(await call('POST', '/v1/campaigns', { body: { file: 'api.json' } })).toMatchObject({ status: 400, body: { error: 'invalid_request', message: expect.stringContaining('file: must be an absolute path') } })
    const submitted = await call('POST', '/v1/campaigns', { body: { file } })
    expect(submitted).toMatchObject({ status: 201, body: { state: expect.any(String) } })
    const id = (submitted.body as CampaignStatus).id
    await waitFor(async () => ((await call('GET', `/v1/campaigns/${id}`)).body as CampaignStatus).state === 'SUCCEEDED', { what: `campaign ${id} to succeed` })
    await waitFor(async () => (await call('GET', `/v1/campaigns/${id}/summary`)).status === 200, { what: `the summary of ${id}` })

    expect(await call('GET', '/v1/campaigns')).toMatchObject({ status: 200, body: [{ id }] })
    expect(await call('GET', `/v1/campaigns/${id}/results`)).toMatchObject({ status: 200, type: expect.stringContaining('application/x-ndjson') })
    expect(await call('GET', `/v1/campaigns/${id}/results?format=csv`)).toMatchObject({ status: 200, type: expect.stringContaining('text/csv') })
    expect(await call('GET', `/v1/campaigns/${id}/results?format=xml`)).toMatchObject({ status: 400, body: { error: 'invalid_request' } })
    expect(await call('GET', `/v1/campaigns/${id}/audit`)).toMatchObject({ status: 200, body: { ok: true } })
    expect(await call('GET', `/v1/campaigns/${id}/summary?format=html`)).toMatchObject({ status: 200, type: expect.stringContaining('text/html'), body: expect.stringContaining('<svg ') })
    expect(await call('GET', `/v1/campaigns/${id}/summary?format=pdf`)).toMatchObject({ status: 400, body: { error: 'invalid_request' } })
    expect(await call('POST', `/v1/campaigns/${id}/cancel`)).toMatchObject({ status: 200, body: { state: 'SUCCEEDED' } })
    expect(await call('POST', `/v1/campaigns/${id}/resume`)).toMatchObject({ status: 409, body: { error: 'conflict' } })
    for (const path of ['', '/summary', '/results', '/audit']) expect((await call('GET', `/v1/campaigns/c-unknown${path}`)).status).toBe(404)

    const violations = await readFile(process.env[OPENAPI_CHECK_ENV]!, 'utf8').catch(() => '')
    expect(violations.split('\n').filter(l => l !== '')).toEqual([])
  })
})
