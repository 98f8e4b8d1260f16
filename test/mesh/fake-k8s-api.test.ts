import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createServer as createTlsServer, type Server } from 'node:tls'
import { promisify } from 'node:util'
import { ApiException, BatchV1Api, CoreV1Api, KubeConfig, Watch, type V1Job, type V1Pod } from '@kubernetes/client-node'
import { startFakeK8s, type FakeK8s } from '../clusters/fake-k8s/index.ts'
import { tempDir, waitFor } from '../helpers.ts'

// The fake Kubernetes API server's HTTP contract as the real client-node (and
// kubectl, when installed) see it: Status errors, watch, selectors, pods/log,
// the scheduler's capacity check and the kubelet's environment.
const exec = promisify(execFile)
const IMAGE = 'registry.example/tools:1'
const NS = 'default'
let fake: FakeK8s
let kc: KubeConfig
let batch: BatchV1Api
let core: CoreV1Api
let image: Awaited<ReturnType<typeof tempDir>>

beforeAll(async () => {
  image = await tempDir('zp-fake-image-')
  fake = await startFakeK8s({ images: { [IMAGE]: image.path } })
  kc = new KubeConfig()
  kc.loadFromFile(fake.kubeconfig)
  batch = kc.makeApiClient(BatchV1Api)
  core = kc.makeApiClient(CoreV1Api)
})

afterAll(async () => {
  await fake?.stop()
  await image?.remove()
})

function jobBody (name: string, podSpec: Record<string, unknown> = {}, spec: Record<string, unknown> = {}): V1Job {
  return { metadata: { name }, spec: { ...spec, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: IMAGE, command: ['true'] }], ...podSpec } } } } as V1Job
}

/** the ApiException client-node throws, with its Status body parsed */
async function apiFailure (call: Promise<unknown>): Promise<{ code: number, status: Record<string, any> }> {
  const err = await call.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(ApiException)
  const e = err as ApiException<string>
  return { code: e.code, status: JSON.parse(e.body) }
}

function pod (name: string, container: Record<string, unknown>, extra: Record<string, unknown> = {}): V1Pod {
  return { metadata: { name, labels: { app: 'probe', tier: name } }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: IMAGE, ...container }], ...extra } } as V1Pod
}

async function podWhen (name: string, ok: (p: V1Pod) => boolean): Promise<V1Pod> {
  return await waitFor(async () => { const p = await core.readNamespacedPod({ name, namespace: NS }); return ok(p) ? p : undefined }, { what: `pod ${name}` })
}

describe('fake Kubernetes: the API as client-node sees it', () => {
  it('answers failures with Status objects: 409 on re-create, 422 with causes, 404, 401, 400, and armed failures', async () => {
    await batch.createNamespacedJob({ namespace: NS, body: jobBody('dup') })
    const dup = await apiFailure(batch.createNamespacedJob({ namespace: NS, body: jobBody('dup') }))
    expect(dup).toEqual({ code: 409, status: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'jobs.batch "dup" already exists', reason: 'AlreadyExists', details: { name: 'dup', group: 'batch', kind: 'jobs' }, code: 409 } })

    const always = await apiFailure(batch.createNamespacedJob({ namespace: NS, body: jobBody('always', { restartPolicy: 'Always' }) }))
    expect(always.code).toBe(422)
    expect(always.status).toMatchObject({ reason: 'Invalid', message: 'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"' })
    expect(always.status.details).toEqual({ name: 'always', group: 'batch', kind: 'Job', causes: [{ reason: 'FieldValueNotSupported', message: 'Unsupported value: "Always": supported values: "OnFailure", "Never"', field: 'spec.template.spec.restartPolicy' }] })

    const invalid: Array<[V1Job, string]> = [
      [jobBody('no-image', { containers: [{ name: 'main', command: ['true'] }] }), 'spec.template.spec.containers[0].image'],
      [jobBody('Bad_Name'), 'metadata.name'],
      // with neither completions nor parallelism both default to 1, which an Indexed Job accepts
      [jobBody('indexed', {}, { completionMode: 'Indexed', parallelism: 2 }), 'spec.completions'],
      [jobBody('per-index', {}, { backoffLimitPerIndex: 1 }), 'spec.backoffLimitPerIndex'],
      [jobBody('policy', { restartPolicy: 'OnFailure' }, { podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] } }), 'spec.template.spec.restartPolicy'],
      [jobBody('gpu', { containers: [{ name: 'main', image: IMAGE, resources: { requests: { 'nvidia.com/gpu': '1' } } }] }), 'spec.template.spec.containers[0].resources.limits']
    ]
    for (const [body, field] of invalid) {
      const { code, status } = await apiFailure(batch.createNamespacedJob({ namespace: NS, body }))
      expect({ code, fields: status.details.causes.map((c: { field: string }) => c.field) }).toEqual({ code: 422, fields: [field] })
    }

    expect(await apiFailure(batch.readNamespacedJob({ name: 'nope', namespace: NS }))).toMatchObject({ code: 404, status: { reason: 'NotFound', message: 'jobs.batch "nope" not found' } })
    expect(await apiFailure(core.readNamespacedPod({ name: 'nope', namespace: NS }))).toMatchObject({ code: 404, status: { message: 'pods "nope" not found', details: { name: 'nope', kind: 'pods' } } })
    expect(await apiFailure(batch.createNamespacedJob({ namespace: 'elsewhere', body: jobBody('x') }))).toMatchObject({ code: 404, status: { message: 'namespaces "elsewhere" not found' } })

    fake.failNext('POST', /\/namespaces\/default\/jobs$/, 500, 'etcdserver: request timed out')
    expect(await apiFailure(batch.createNamespacedJob({ namespace: NS, body: jobBody('armed') }))).toMatchObject({ code: 500, status: { reason: 'InternalError', message: 'etcdserver: request timed out' } })
    await batch.createNamespacedJob({ namespace: NS, body: jobBody('armed') })

    const stranger = new KubeConfig()
    stranger.loadFromOptions({ clusters: kc.clusters, contexts: kc.contexts, currentContext: kc.currentContext, users: [{ name: 'fake', token: 'wrong' }] })
    const denied = await stranger.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: NS }).then(() => undefined, (e: unknown) => e)
    expect(denied).toMatchObject({ code: 401 })

    const token = kc.getCurrentUser()!.token!
    const bad = await fetch(`${fake.url}/apis/batch/v1/namespaces/default/jobs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"metadata":' })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'BadRequest', code: 400 })
  })

  it('watch streams ADDED, MODIFIED and DELETED from a resourceVersion, filtered by label', async () => {
    const listed = await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=watched' })
    const events: Array<[string, string]> = []
    const watching = await new Watch(kc).watch(`/api/v1/namespaces/${NS}/pods`, { labelSelector: 'job-name=watched', resourceVersion: listed.metadata!.resourceVersion }, (type: string, obj: V1Pod) => {
      events.push([type, obj.status?.phase ?? ''])
    }, () => {})
    await batch.createNamespacedJob({ namespace: NS, body: jobBody('watched', { containers: [{ name: 'main', image: IMAGE, command: ['sh', '-c', 'echo one; echo two; echo three'] }] }) })
    await waitFor(async () => (await batch.readNamespacedJob({ name: 'watched', namespace: NS })).status?.succeeded === 1)
    const [done] = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'job-name=watched' })).items
    expect(await core.readNamespacedPodLog({ name: done!.metadata!.name!, namespace: NS })).toBe('one\ntwo\nthree\n')
    expect(await core.readNamespacedPodLog({ name: done!.metadata!.name!, namespace: NS, tailLines: 2 })).toBe('two\nthree\n')
    expect(await core.readNamespacedPodLog({ name: done!.metadata!.name!, namespace: NS, limitBytes: 4 })).toBe('one\n')
    await batch.deleteNamespacedJob({ name: 'watched', namespace: NS, propagationPolicy: 'Background' })
    await waitFor(() => events.some(([type]) => type === 'DELETED'), { what: 'a DELETED event' })
    watching.abort()
    // the Job's own history, replayed from before it existed
    const jobEvents: string[] = []
    const jobWatch = await new Watch(kc).watch(`/apis/batch/v1/namespaces/${NS}/jobs`, { fieldSelector: 'metadata.name=watched', resourceVersion: listed.metadata!.resourceVersion }, (type: string, j: V1Job) => {
      jobEvents.push(`${type}${j.status?.conditions?.some(c => c.type === 'Complete') === true ? ' Complete' : ''}`)
    }, () => {})
    await waitFor(() => jobEvents.includes('DELETED Complete'), { what: 'the Job\'s DELETED event' })
    jobWatch.abort()
    expect(jobEvents[0]).toBe('ADDED')
    expect(jobEvents).toContain('MODIFIED Complete')
    expect(events[0]).toEqual(['ADDED', 'Pending'])
    expect(events).toContainEqual(['MODIFIED', 'Running'])
    expect(events).toContainEqual(['MODIFIED', 'Succeeded'])
    expect(events.at(-1)).toEqual(['DELETED', 'Succeeded'])
    expect(events.filter(([type]) => type === 'ADDED')).toHaveLength(1)

    // without a resourceVersion the objects there now come first; timeoutSeconds ends the stream
    let ended = false
    const seen: string[] = []
    await new Watch(kc).watch('/api/v1/namespaces', { timeoutSeconds: 1 }, (type: string, obj: { metadata?: { name?: string } }) => { seen.push(`${type} ${obj.metadata?.name}`) }, () => { ended = true })
    await waitFor(() => ended, { what: 'the watch to time out' })
    expect(seen).toEqual(['ADDED default', 'ADDED kube-node-lease', 'ADDED kube-public', 'ADDED kube-system'])
  })

  it('schedules against the node capacity and runs containers with the kubelet\'s environment', async () => {
    await core.createNamespacedPod({ namespace: NS, body: pod('wants-gpu', { command: ['true'], resources: { limits: { 'nvidia.com/gpu': '1' } } }) })
    const unschedulable = await podWhen('wants-gpu', p => p.status?.conditions?.some(c => c.type === 'PodScheduled') === true)
    expect(unschedulable.status?.phase).toBe('Pending')
    expect(unschedulable.status?.conditions).toContainEqual(expect.objectContaining({ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient nvidia.com/gpu.' }))

    await core.createNamespacedPod({ namespace: NS, body: pod('no-image', { image: 'registry.example/missing:1', command: ['true'] }) })
    expect((await podWhen('no-image', p => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff')).status?.phase).toBe('Pending')

    const env = [
      { name: 'GREETING', value: 'hi' },
      { name: 'DOUBLED', value: '$(GREETING)-$(GREETING)' },
      { name: 'PSK', valueFrom: { secretKeyRef: { name: 'later', key: 'psk' } } },
      { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'TIER', valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } } },
      { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }
    ]
    const script = 'echo "$DOUBLED $PSK $POD $TIER $IP $HOSTNAME $(pwd) $1"'
    await core.createNamespacedPod({ namespace: NS, body: pod('env', { command: ['sh', '-c', script, 'sh'], args: ['$(GREETING) $$(GREETING) $(MISSING)'], env }) })
    const stuck = await podWhen('env', p => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError')
    expect(stuck.status?.containerStatuses?.[0]?.state?.waiting?.message).toBe('secret "later" not found')
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'later' }, data: { psk: Buffer.from('k3y').toString('base64') } } })
    const ran = await podWhen('env', p => p.status?.phase === 'Succeeded')
    const [line = ''] = (await core.readNamespacedPodLog({ name: 'env', namespace: NS })).split('\n')
    const [doubled, psk, name, tier, ip, host, cwd, ...arg] = line.split(' ')
    expect({ doubled, psk, name, tier, ip, host, arg: arg.join(' ') }).toEqual({ doubled: 'hi-hi', psk: 'k3y', name: 'env', tier: 'env', ip: '127.0.0.1', host: 'env', arg: 'hi $(GREETING) $(MISSING)' })
    expect(cwd).toMatch(/zp-fake-k8s-.*\/pods\/default_env_/)
    expect(ran.status?.startTime).toBeInstanceOf(Date)

    await core.createNamespacedPod({ namespace: NS, body: pod('crash', { command: ['sh', '-c', 'echo boom; exit 3'] }, { restartPolicy: 'Always' }) })
    const looping = await podWhen('crash', p => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff')
    expect(looping.status?.phase).toBe('Running')
    expect(looping.status?.containerStatuses?.[0]).toMatchObject({ restartCount: 1, lastState: { terminated: { exitCode: 3, reason: 'Error' } } })
    // its output stays readable while it waits; `previous` is there only once a second instance has started
    expect(await core.readNamespacedPodLog({ name: 'crash', namespace: NS })).toBe('boom\n')
    expect(await apiFailure(core.readNamespacedPodLog({ name: 'crash', namespace: NS, previous: true }))).toMatchObject({ code: 400, status: { message: 'previous terminated container "main" in pod "crash" not found' } })

    const page = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=probe', limit: 2 })
    expect(page.items.map(p => p.metadata?.name)).toEqual(['crash', 'env'])
    expect(page.metadata?.remainingItemCount).toBe(2)
    const rest = await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=probe', limit: 2, _continue: page.metadata!._continue! })
    expect(rest.items.map(p => p.metadata?.name)).toEqual(['no-image', 'wants-gpu'])
    expect(rest.metadata?._continue).toBeUndefined()
    const byLabel = (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=probe,tier in (env,crash),!missing', fieldSelector: 'status.phase!=Pending' })).items.map(p => p.metadata?.name)
    expect(byLabel.sort()).toEqual(['crash', 'env'])
    expect(await apiFailure(core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.nope=x' }))).toMatchObject({ code: 400, status: { message: 'field label not supported: spec.nope' } })
    await core.deleteCollectionNamespacedPod({ namespace: NS, labelSelector: 'app=probe', gracePeriodSeconds: 0 })
    expect((await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=probe' })).items).toEqual([])
  })

  it('replaces a Secret under its resourceVersion, and empties a namespace before deleting it', async () => {
    const secret = await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'rotated' }, stringData: { psk: 'old' } } })
    expect(secret.data).toEqual({ psk: Buffer.from('old').toString('base64') })
    const replaced = await core.replaceNamespacedSecret({ name: 'rotated', namespace: NS, body: { metadata: { name: 'rotated', resourceVersion: secret.metadata!.resourceVersion }, stringData: { psk: 'new' } } })
    expect(Buffer.from(replaced.data!.psk!, 'base64').toString()).toBe('new')
    expect(await apiFailure(core.replaceNamespacedSecret({ name: 'rotated', namespace: NS, body: { metadata: { name: 'rotated', resourceVersion: secret.metadata!.resourceVersion }, stringData: { psk: 'stale' } } })))
      .toMatchObject({ code: 409, status: { reason: 'Conflict', message: 'Operation cannot be fulfilled on secrets "rotated": the object has been modified; please apply your changes to the latest version and try again' } })
    expect(fake.secrets(NS).map(s => s.metadata?.name)).toContain('rotated')

    await core.createNamespace({ body: { metadata: { name: 'team' } } })
    await batch.createNamespacedJob({ namespace: 'team', body: jobBody('held', { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: IMAGE, command: ['sh', '-c', 'trap "" TERM; echo trapped; while :; do sleep 0.05; done'] }] }) })
    const [held] = await waitFor(async () => { const p = (await core.listNamespacedPod({ namespace: 'team', fieldSelector: 'status.phase=Running' })).items; return p.length === 1 ? p : undefined })
    // Running is said once the process starts; SIGTERM before the shell set its trap would end it (and the namespace) at once
    await waitFor(async () => (await core.readNamespacedPodLog({ name: held!.metadata!.name!, namespace: 'team' })).includes('trapped'), { what: 'the container to ignore SIGTERM' })
    const terminating = await core.deleteNamespace({ name: 'team' })
    expect(terminating.status).toMatchObject({ phase: 'Terminating' })
    expect(await apiFailure(core.createNamespacedSecret({ namespace: 'team', body: { metadata: { name: 'late' } } })))
      .toMatchObject({ code: 403, status: { message: 'secrets "late" is forbidden: unable to create new content in namespace team because it is being terminated' } })
    await waitFor(async () => (await core.listNamespace({ fieldSelector: 'metadata.name=team' })).items.length === 0, { what: 'the namespace to go' })
    expect(fake.pods('team')).toEqual([])
    expect(await apiFailure(core.deleteNamespace({ name: 'default' }))).toMatchObject({ code: 403, status: { message: 'namespaces "default" is forbidden: this namespace may not be deleted' } })
  })

  it('kubectl reads the same pods and Jobs (through TLS: client-go sends no token over plain http)', async (ctx) => {
    for (const tool of ['kubectl', 'openssl']) {
      if (!await exec('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false)) {
        ctx.skip(`${tool} is not installed (not needed: client-node covers the API)`)
        return
      }
    }
    const dir = await tempDir('zp-kubectl-')
    const proxy = await tlsProxy(dir.path, Number(new URL(fake.url).port))
    try {
      const config = join(dir.path, 'kubeconfig')
      const ca = (await readFile(join(dir.path, 'cert.pem'))).toString('base64')
      await writeFile(config, (await readFile(fake.kubeconfig, 'utf8')).replace(/server: \S+/, `server: https://127.0.0.1:${proxy.port}`).replace(/insecure-skip-tls-verify: true/, `certificate-authority-data: ${ca}`))
      const kubectl = async (...args: string[]): Promise<{ items: Array<{ metadata: { name: string } }> }> =>
        JSON.parse((await exec('kubectl', ['--kubeconfig', config, '--cache-dir', join(dir.path, 'cache'), ...args, '-o', 'json'], { timeout: 60_000 })).stdout)
      const pods = await kubectl('get', 'pods')
      expect(pods.items.map(p => p.metadata.name)).toEqual(fake.pods(NS).map(p => p.metadata?.name))
      expect(pods.items.length).toBeGreaterThan(0)
      expect((await kubectl('get', 'jobs', '-l', 'batch.kubernetes.io/job-name=dup')).items.map(j => j.metadata.name)).toEqual(['dup'])
    } finally {
      proxy.server.close()
      await dir.remove()
    }
  })
})

/** a self-signed TLS front for the fake (openssl makes the certificate) that pipes each connection to it */
async function tlsProxy (dir: string, port: number): Promise<{ server: Server, port: number }> {
  await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
  const server = createTlsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) }, socket => {
    const upstream = connect(port, '127.0.0.1')
    socket.pipe(upstream).pipe(socket)
    socket.on('error', () => { upstream.destroy() })
    upstream.on('error', () => { socket.destroy() })
  })
  await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
  return { server, port: (server.address() as AddressInfo).port }
}
