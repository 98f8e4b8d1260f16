import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { V1Job, V1Pod, V1Secret } from '@kubernetes/client-node'
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js'
import { stringify } from 'yaml'
import { Api } from './api.ts'
import { Deleter } from './deletion.ts'
import { JobController } from './job-controller.ts'
import { Kubelet } from './kubelet.ts'
import { LogBook } from './logs.ts'
import type { Resource } from './resources.ts'
import { Scheduler } from './scheduler.ts'
import { createApiServer, type FailRule } from './server.ts'
import { Store } from './store.ts'

/**
 * A Kubernetes API server, Job controller, scheduler and one-node kubelet
 * in the test process, following the documented API for what a Job-based
 * bridge relies on; each pod's container runs as a local process. See
 * README.md beside this file for what it covers and where it differs from
 * a real cluster.
 */
export interface FakeK8sOptions {
  /** image reference → directory put first on PATH for that image's containers */
  images: Record<string, string>
  /** the fake node's allocatable resources (default { cpu: '8', memory: '16Gi' }) */
  capacity?: Record<string, string>
}

export interface FakeK8s {
  /** http://127.0.0.1:PORT */
  readonly url: string
  /** a kubeconfig file (context "fake", namespace default, the bearer token) for --kubeconfig / KUBECONFIG */
  readonly kubeconfig: string
  /** the pods the server holds now (V1Pod objects from @kubernetes/client-node's types) */
  pods: (namespace?: string) => V1Pod[]
  jobs: (namespace?: string) => V1Job[]
  secrets: (namespace?: string) => V1Secret[]
  /** pid of a pod's running container process, if it runs */
  pid: (namespace: string, pod: string) => number | undefined
  /** make the next matching request fail with this Status code (409/422/500) and message, once; the pattern is tested against the URL path */
  failNext: (method: string, pathPattern: RegExp, code: number, message: string) => void
  /** kills every pod process (SIGKILL), removes temp dirs, closes the server */
  stop: () => Promise<void>
}

const DEFAULT_CAPACITY = { cpu: '8', memory: '16Gi' }
const NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease']

export async function startFakeK8s (opts: FakeK8sOptions): Promise<FakeK8s> {
  for (const [image, dir] of Object.entries(opts.images)) {
    const isDir = await stat(dir).then(s => s.isDirectory(), () => false)
    if (!isDir) throw new Error(`fake-k8s: image ${image}: ${dir} is not a directory (images maps an image reference to the directory put first on its containers' PATH)`)
  }
  const store = new Store()
  const scheduler = new Scheduler(store, opts.capacity ?? DEFAULT_CAPACITY)
  const token = randomBytes(24).toString('hex')
  const logs = new LogBook()
  const deleter = new Deleter(store)
  const api = new Api(store, deleter)
  for (const name of NAMESPACES) api.create('namespaces', undefined, { metadata: { name } })
  const failures: FailRule[] = []
  const { server, closeWatches } = createApiServer({ store, api, logs, token, failures })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const root = await mkdtemp(join(tmpdir(), 'zp-fake-k8s-'))
  await mkdir(join(root, 'pods'))
  const port = (server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`
  const kubelet = new Kubelet({ store, logs, images: opts.images, root: join(root, 'pods'), apiPort: port })
  const controller = new JobController({
    store,
    createPod: pod => { api.create('pods', pod.metadata.namespace, pod) },
    deletePod: pod => { deleter.deletePod(pod, undefined) },
    deleteJob: job => { deleter.delete('jobs', job.metadata.namespace, job.metadata.name!, { propagationPolicy: 'Background' }) }
  })
  deleter.start()
  scheduler.start()
  kubelet.start()
  controller.start()

  const kubeconfig = join(root, 'kubeconfig')
  await writeFile(kubeconfig, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // client-node refuses a plain-http server unless TLS verification is off
    clusters: [{ name: 'fake', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'fake', user: { token } }],
    contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: 'default' } }],
    'current-context': 'fake'
  }), { mode: 0o600 })

  const typed = <T>(resource: Resource, type: string) => (namespace?: string): T[] =>
    store.list(resource, namespace).map(o => ObjectSerializer.deserialize(structuredClone(o), type, '') as T)
  let stopping: Promise<void> | undefined
  return {
    url,
    kubeconfig,
    pods: typed<V1Pod>('pods', 'V1Pod'),
    jobs: typed<V1Job>('jobs', 'V1Job'),
    secrets: typed<V1Secret>('secrets', 'V1Secret'),
    pid: (namespace, pod) => kubelet.pid(namespace, pod),
    failNext: (method, path, code, message) => { failures.push({ method, path, code, message }) },
    stop: async () => {
      stopping ??= (async () => {
        controller.stop()
        scheduler.stop()
        deleter.stop()
        closeWatches()
        await kubelet.stop()
        server.closeAllConnections()
        await new Promise<void>(resolve => { server.close(() => { resolve() }) })
        await rm(root, { recursive: true, force: true })
      })()
      await stopping
    }
  }
}

