import type { Hono } from 'hono'
import { z } from 'zod'
import { summarizeIssues } from '../../protocols/common/validate.ts'
import { DaskUpSchema, K8sUpSchema, RayUpSchema, SlurmUpSchema, type Allocation } from '../../protocols/bridge/schema.ts'
import type { BridgeRegistry } from '../../bootstrap/bridge/registry.ts'

/** how long a bridge call may take (sbatch, the Dask driver starting a node on every worker, scancel and the drain) */
const BRIDGE_CALL_TIMEOUT_MS = 120_000

const Bootstrap = z.array(z.string().min(1).max(1024)).max(16).optional()

export const BridgeUpBodySchema = z.discriminatedUnion('engine', [
  z.object({ engine: z.literal('slurm'), options: SlurmUpSchema, bootstrap: Bootstrap }).strict(),
  z.object({ engine: z.literal('dask'), options: DaskUpSchema, bootstrap: Bootstrap }).strict(),
  z.object({ engine: z.literal('ray'), options: RayUpSchema, bootstrap: Bootstrap }).strict(),
  z.object({ engine: z.literal('k8s'), options: K8sUpSchema, bootstrap: Bootstrap }).strict()
], { message: 'expected {"engine": "slurm" | "dask" | "ray" | "k8s", "options": {...}}' })
export type BridgeUpBody = z.infer<typeof BridgeUpBodySchema>

/** `zp bridge …`: allocations of Slurm, Dask, Ray and Kubernetes capacity that become mesh nodes. */
export function bridgeRoutes (bridges: BridgeRegistry) {
  return (app: Hono): void => {
    app.post('/v1/bridges', async c => {
      const body = BridgeUpBodySchema.safeParse(await c.req.json().catch(() => undefined))
      if (!body.success) return c.json({ error: 'invalid_request', message: summarizeIssues(body.error) }, 400)
      try {
        return c.json(await bridges.up(body.data, AbortSignal.timeout(BRIDGE_CALL_TIMEOUT_MS)), 201)
      } catch (err) {
        return failed(c, err)
      }
    })
    app.get('/v1/bridges', async c => c.json(await bridges.list(AbortSignal.timeout(BRIDGE_CALL_TIMEOUT_MS)) satisfies Allocation[]))
    app.get('/v1/bridges/:id', async c => {
      try {
        return c.json(await bridges.get(c.req.param('id'), AbortSignal.timeout(BRIDGE_CALL_TIMEOUT_MS)))
      } catch (err) {
        return failed(c, err)
      }
    })
    app.delete('/v1/bridges/:id', async c => {
      try {
        return c.json(await bridges.down(c.req.param('id'), AbortSignal.timeout(BRIDGE_CALL_TIMEOUT_MS)))
      } catch (err) {
        return failed(c, err)
      }
    })
  }
}

const ENGINE_ERRORS = new Set(['SlurmError', 'DaskError', 'ManifestError', 'RayError', 'K8sError'])

/** The engine's own errors (SlurmError, DaskError, RayError, K8sError: cause and fix in the message) are 502; an unknown allocation 404. */
function failed (c: { json: (body: unknown, status: 400 | 404 | 502) => Response }, err: unknown): Response {
  const e = err as Error & { status?: number }
  if (e.name === 'BridgeError' && (e.status === 400 || e.status === 404 || e.status === 502)) {
    return c.json({ error: e.status === 404 ? 'not_found' : e.status === 400 ? 'invalid_request' : 'engine_error', message: e.message }, e.status)
  }
  if (ENGINE_ERRORS.has(e.name)) return c.json({ error: 'engine_error', message: e.message }, 502)
  throw err
}
