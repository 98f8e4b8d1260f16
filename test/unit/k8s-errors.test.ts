import { createServer, type Server, type Socket } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ApiException } from '@kubernetes/client-node'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { K8sClient } from '../../bootstrap/k8s/client.ts'
import { K8sError, toK8sError, type K8sCall } from '../../bootstrap/k8s/errors.ts'
import { tempDir, waitFor } from '../helpers.ts'

const CALL: K8sCall = { verb: 'create', resource: 'Job', name: 'zp-abc123', namespace: 'lab', server: 'https://10.0.0.1:6443', context: 'gke-lab' }

/** an ApiException as client-node 2.x throws it: the Status as the JSON text the server sent */
function apiError (code: number, status: Record<string, unknown> | undefined): ApiException<unknown> {
  return new ApiException(code, 'Unknown API Status Code!', status != null ? JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, ...status }) : undefined, {})
}

function kubeconfig (server: string): string {
  return [
    'apiVersion: v1', 'kind: Config', 'current-context: t',
    'clusters:', '- name: t', `  cluster: { server: "${server}", insecure-skip-tls-verify: true }`,
    'contexts:', '- name: t', '  context: { cluster: t, user: t, namespace: lab }',
    'users:', '- name: t', '  user: { token: abc }'
  ].join('\n')
}

describe('toK8sError: API failures as messages that name the problem and the fix', () => {
  it('401: the credentials of the context, and how to refresh them', () => {
    const e = toK8sError(apiError(401, undefined), CALL)
    expect(e).toBeInstanceOf(K8sError)
    expect(e).toMatchObject({ name: 'K8sError', code: 'unauthorized', status: 401 })
    expect(e.message).toContain("'gke-lab'")
    expect(e.message).toMatch(/--kubeconfig|--context/)
  })

  it('403: the verbs and resources the bridge needs, in which namespace', () => {
    const e = toK8sError(apiError(403, { reason: 'Forbidden', message: 'jobs.batch is forbidden: User "ci" cannot create resource "jobs" in API group "batch" in the namespace "lab"' }), CALL)
    expect(e.code).toBe('forbidden')
    expect(e.message).toContain('cannot create resource "jobs"')
    expect(e.message).toContain('in namespace lab: create, get, delete on jobs (batch); create, update, delete on secrets; list on pods')
    expect(e.message).toContain('Role and RoleBinding')
  })

  it('404 of the namespace: create it or pass --namespace; 404 of an object is not-found', () => {
    const ns = toK8sError(apiError(404, { reason: 'NotFound', message: 'namespaces "lab" not found', details: { name: 'lab', kind: 'namespaces' } }), CALL)
    expect(ns.code).toBe('no-namespace')
    expect(ns.message).toContain('kubectl create namespace lab')
    expect(ns.message).toContain('--namespace')
    expect(toK8sError(apiError(404, { reason: 'NotFound', message: 'jobs.batch "zp-abc123" not found', details: { name: 'zp-abc123', group: 'batch', kind: 'jobs' } }), CALL).code).toBe('not-found')
  })

  it('409: it exists, how to delete it', () => {
    const e = toK8sError(apiError(409, { reason: 'AlreadyExists', message: 'jobs.batch "zp-abc123" already exists' }), CALL)
    expect(e.code).toBe('conflict')
    expect(e.message).toContain('already exists')
    expect(e.message).toContain('kubectl -n lab delete job zp-abc123')
  })

  it('422: every cause the server listed, field by field', () => {
    const e = toK8sError(apiError(422, {
      reason: 'Invalid',
      message: 'Job.batch "zp-abc123" is invalid: [spec.template.spec.containers[0].image: Required value, spec.template.spec.restartPolicy: Unsupported value: "Always"]',
      details: { causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.template.spec.containers[0].image' }, { reason: 'FieldValueNotSupported', message: 'Unsupported value: "Always"', field: 'spec.template.spec.restartPolicy' }] }
    }), CALL)
    expect(e.code).toBe('invalid')
    expect(e.message).toContain('spec.template.spec.containers[0].image: Required value; spec.template.spec.restartPolicy: Unsupported value: "Always"')
  })

  it('a body that is not a Status (a proxy\'s HTML) still gives the status code', () => {
    const e = toK8sError(new ApiException(502, 'Unknown API Status Code!', '<html>Bad Gateway</html>', {}), CALL)
    expect(e).toMatchObject({ code: 'failed', status: 502 })
    expect(e.message).toContain('502')
  })
})

describe('K8sClient against servers that fail at the transport', () => {
  let dir: { path: string, remove: () => Promise<void> }
  let server: Server | undefined
  const sockets: Socket[] = []
  beforeEach(async () => { dir = await tempDir('zp-k8s-client-') })
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy()
    await new Promise(resolve => server != null ? server.close(resolve) : resolve(undefined))
    server = undefined
    await dir.remove()
  })

  async function listen (): Promise<number> {
    server = createServer(s => { sockets.push(s.resume()) })
    await new Promise<void>(resolve => server!.listen(0, '127.0.0.1', resolve))
    return (server.address() as { port: number }).port
  }

  it('a server that refuses connections: unreachable, naming its address and the context', async () => {
    const port = await listen()
    await new Promise(resolve => server!.close(resolve))
    server = undefined
    const file = join(dir.path, 'kubeconfig')
    await writeFile(file, kubeconfig(`http://127.0.0.1:${port}`))
    const client = new K8sClient({ kubeconfig: file })
    expect(client.namespace).toBe('lab')
    const err = await client.readJob('zp-abc123', AbortSignal.timeout(10_000)).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'K8sError', code: 'unreachable' })
    expect((err as Error).message).toContain(`http://127.0.0.1:${port}`)
    expect((err as Error).message).toContain('ECONNREFUSED')
    expect((err as Error).message).toContain("context ('t')")
  })

  it('a server that never answers: the caller\'s signal ends the call', async () => {
    const port = await listen()
    const file = join(dir.path, 'kubeconfig')
    await writeFile(file, kubeconfig(`http://127.0.0.1:${port}`))
    const started = Date.now()
    const err = await new K8sClient({ kubeconfig: file }).jobPods('zp-abc123', AbortSignal.timeout(300)).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'K8sError', code: 'timeout' })
    expect(Date.now() - started).toBeLessThan(5_000)
    // the request itself was aborted (the signal reached fetch), not just left hanging
    await waitFor(() => sockets.length > 0 && sockets.every(s => s.destroyed), { timeoutMs: 5_000, what: 'the request\'s connection to close' })
  })

  it('plain http without insecure-skip-tls-verify: a config error naming the context', async () => {
    const file = join(dir.path, 'kubeconfig')
    await writeFile(file, kubeconfig(`http://127.0.0.1:${await listen()}`).replace(', insecure-skip-tls-verify: true', ''))
    const err = await new K8sClient({ kubeconfig: file }).readJob('zp-abc123', AbortSignal.timeout(10_000)).catch((e: unknown) => e)
    expect(err).toMatchObject({ name: 'K8sError', code: 'config' })
    expect((err as Error).message).toContain("context 't'")
  })

  it('a kubeconfig that is missing, or a context it lacks: config errors naming the fix', async () => {
    expect(() => new K8sClient({ kubeconfig: join(dir.path, 'nope') })).toThrow(/ENOENT.*--kubeconfig/)
    const file = join(dir.path, 'kubeconfig')
    await writeFile(file, kubeconfig('http://127.0.0.1:1'))
    expect(() => new K8sClient({ kubeconfig: file, context: 'prod' })).toThrow("has no context 'prod' (it has: t)")
    expect(() => new K8sClient({}, { HOME: dir.path })).toThrow(/no kubeconfig.*--kubeconfig/)
  })
})
