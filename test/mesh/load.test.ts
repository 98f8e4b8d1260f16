import { readFile } from 'node:fs/promises'
import { totalmem } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { resolveApiTarget } from '../../node/api/client.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { OPENAPI_CHECK_ENV } from '../../node/api/server.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createMesh, type Mesh } from './harness.ts'

/*
 * Two real nodes: each samples its hardware and carries the sample in its
 * heartbeats; the other lists it in GET /v1/peers (checked against openapi.yaml).
 */

let mesh: Mesh
let scratch: { path: string, remove: () => Promise<void> }

beforeAll(async () => {
  scratch = await tempDir('zp-load-')
  vi.stubEnv(OPENAPI_CHECK_ENV, join(scratch.path, 'violations.jsonl'))
  mesh = await createMesh()
})

afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
  vi.unstubAllEnvs()
})

async function peersOf (dataDir: string): Promise<PeerJson[]> {
  const target = await resolveApiTarget({ dataDir })
  const res = await fetch(`${target.url}/v1/peers`, { headers: { authorization: `Bearer ${target.token}` }, signal: AbortSignal.timeout(10_000) })
  expect(res.status).toBe(200)
  return await res.json() as PeerJson[]
}

describe('hardware load in heartbeats', () => {
  it('each node lists the other\'s CPU and memory load within a few heartbeats', async () => {
    const a = await mesh.start({ name: 'a', api: { host: '127.0.0.1', port: 0 } })
    const b = await mesh.start({ name: 'b', api: { host: '127.0.0.1', port: 0 }, bootstrap: a.libp2p.getMultiaddrs() })
    for (const [viewer, other] of [[a, b], [b, a]] as const) {
      // the first sample is taken one second after start, then heartbeats carry it (every 300 ms here)
      const seen = await waitFor(async () => (await peersOf(viewer.dataDir)).find(p => p.peerId === other.peerId && p.load != null), {
        timeoutMs: 10_000, what: `${viewer.name} to list ${other.name}'s load`
      })
      const load = seen.load!
      expect(load.cpu).toBeGreaterThanOrEqual(0)
      expect(load.cpu).toBeLessThanOrEqual(1)
      // the same machine: the other node's total memory is this one's
      expect(load.memTotal).toBe(totalmem())
      expect(load.memUsed).toBeGreaterThan(0)
      expect(load.memUsed).toBeLessThan(load.memTotal)
      expect(Array.isArray(load.gpus)).toBe(true)
    }
    // and its own, in the self row
    expect((await peersOf(a.dataDir)).find(p => p.self)?.load).toMatchObject({ memTotal: totalmem() })
    const violations = await readFile(process.env[OPENAPI_CHECK_ENV]!, 'utf8').catch(() => '')
    expect(violations.split('\n').filter(l => l !== '')).toEqual([])
  })
})
