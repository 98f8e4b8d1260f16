import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { accessSync, constants as fs, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { constants as os } from 'node:os'
import { delimiter, isAbsolute, join, resolve } from 'node:path'
import { ConfigError, containerEnv, expand, type EnvContext } from './container-env.ts'
import type { LogBook } from './logs.ts'
import { admitted, crashLooping, finished, running, waiting, type Exit } from './pod-status.ts'
import { now } from './store.ts'
import type { Pod } from './wire.ts'

/**
 * One pod on the fake node: its container as a local process in its own
 * process group, with a fresh directory as its file system (cwd, HOME,
 * TMPDIR), the image's directory first on PATH, and HOSTNAME the pod's
 * hostname. Restarts per restartPolicy with the kubelet's back-off; on
 * deletion SIGTERM to the main process, SIGKILL to the group after the
 * grace period, then the pod object is removed.
 */
export interface WorkerDeps extends EnvContext {
  logs: LogBook
  images: Record<string, string>
  /** where pods' directories are made */
  root: string
}

const BACKOFF_BASE_S = 10
const BACKOFF_MAX_S = 300
/** output still in the pipes after the main process exits is read for at most this long */
const DRAIN_MS = 2_000
const PULL_BACKOFF_MS = 1_000

export class PodWorker {
  readonly uid: string
  readonly namespace: string
  readonly #name: string
  readonly #deps: WorkerDeps
  readonly #dir: string
  #child?: ChildProcess
  #exited?: Promise<void>
  #waitingOnConfig = false
  #terminating = false
  #disposed = false
  #timer?: ReturnType<typeof setTimeout>
  #killTimer?: ReturnType<typeof setTimeout>
  #killAt = Infinity
  #startedAt?: string

  constructor (deps: WorkerDeps, pod: Pod) {
    this.#deps = deps
    this.uid = pod.metadata.uid!
    this.namespace = pod.metadata.namespace!
    this.#name = pod.metadata.name!
    this.#dir = mkdtempSync(join(deps.root, `${this.namespace}_${this.#name}_`))
    mkdirSync(join(this.#dir, 'tmp'))
  }

  get pid (): number | undefined { return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined }

  get waitingOnConfig (): boolean { return this.#waitingOnConfig }

  start (): void {
    this.#update(admitted)
    this.run()
  }

  /** (re)tries to start the container: after a back-off, or when a Secret it waits for may have appeared */
  run (): void {
    if (this.#terminating || this.#disposed || this.#child !== undefined) return
    const pod = this.#pod()
    if (pod === undefined) return
    const spec = pod.spec.containers[0]!
    const image = spec.image ?? ''
    const imageDir = this.#deps.images[image]
    if (imageDir === undefined) {
      const known = Object.keys(this.#deps.images).map(i => `"${i}"`).join(', ') || 'none'
      this.#update(p => { waiting(p, 'ErrImagePull', `rpc error: code = NotFound desc = failed to pull and unpack image "${image}": fake-k8s has no image "${image}" (its images: ${known})`) })
      this.#timer = setTimeout(() => { this.#update(p => { waiting(p, 'ImagePullBackOff', `Back-off pulling image "${image}"`) }) }, PULL_BACKOFF_MS)
      return
    }
    let env: Record<string, string>
    try {
      env = containerEnv(pod, spec, this.#deps)
      this.#waitingOnConfig = false
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      this.#waitingOnConfig = true
      this.#update(p => { waiting(p, 'CreateContainerConfigError', err.message) })
      return
    }
    const argv = [...(spec.command ?? []), ...(spec.args ?? [])].map(a => expand(a, env))
    const processEnv = { PATH: `${imageDir}${delimiter}${process.env.PATH ?? ''}`, HOSTNAME: pod.spec.hostname ?? this.#name, HOME: this.#dir, TMPDIR: join(this.#dir, 'tmp'), ...env }
    const program = (spec.command ?? []).length === 0 ? undefined : findExecutable(argv[0]!, processEnv.PATH, this.#dir)
    if (program === undefined) {
      const why = (spec.command ?? []).length === 0 ? 'fake-k8s images have no entrypoint: set the container\'s command' : `exec: "${argv[0]}": executable file not found in $PATH`
      this.#exitedWith({ exitCode: 128, reason: 'StartError', message: `failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: ${why}: unknown`, finishedAt: now() })
      return
    }
    this.#deps.logs.begin(this.uid)
    const child = spawn(program, argv.slice(1), { argv0: argv[0], cwd: this.#dir, env: processEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    this.#child = child
    this.#startedAt = now()
    const closed = new Promise<void>(resolve => child.on('close', () => { resolve() }))
    for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => { this.#deps.logs.append(this.uid, chunk) })
    this.#exited = new Promise<void>(resolve => {
      child.on('error', err => {
        // spawn itself failed (EACCES, …): no 'exit' follows
        if (child.pid !== undefined) return
        this.#child = undefined
        this.#exitedWith({ exitCode: 128, reason: 'StartError', message: `unable to start container process: ${err.message}`, finishedAt: now() })
        resolve()
      })
      child.on('exit', (code, signal) => {
        // the container's other processes go with its main process
        this.#signalGroup('SIGKILL')
        const exitCode = code ?? 128 + (signal === null ? 0 : os.signals[signal])
        const exit: Exit = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: this.#startedAt, finishedAt: now(), containerID: containerId(child) }
        void Promise.race([closed, new Promise(resolve => setTimeout(resolve, DRAIN_MS))]).then(() => {
          this.#child = undefined
          this.#deps.logs.end(this.uid)
          this.#exitedWith(exit)
          resolve()
        })
      })
    })
    if (child.pid !== undefined) this.#update(p => { running(p, containerId(child)) })
  }

  /** the pod has a deletionTimestamp: SIGTERM now, SIGKILL after the grace period */
  terminate (graceSeconds: number): void {
    if (this.#disposed) return
    const first = !this.#terminating
    this.#terminating = true
    clearTimeout(this.#timer)
    if (this.#child === undefined) {
      if (first) this.#finish(undefined)
      return
    }
    if (first) this.#signalMain('SIGTERM')
    // called again on each status change while terminating; only a later delete with a shorter grace period moves the deadline
    const killAt = Date.now() + graceSeconds * 1000
    if (killAt >= this.#killAt) return
    this.#killAt = killAt
    clearTimeout(this.#killTimer)
    this.#killTimer = setTimeout(() => { this.#signalGroup('SIGKILL') }, graceSeconds * 1000)
  }

  /** the pod object is gone (or the fake stops): kill whatever runs, forget the logs, remove the directory */
  async dispose (): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    clearTimeout(this.#timer)
    clearTimeout(this.#killTimer)
    this.#signalGroup('SIGKILL')
    await this.#exited
    this.#deps.logs.drop(this.uid)
    rmSync(this.#dir, { recursive: true, force: true })
  }

  #exitedWith (exit: Exit): void {
    if (this.#disposed) return
    const pod = this.#pod()
    if (pod === undefined) return
    clearTimeout(this.#killTimer)
    const policy = pod.spec.restartPolicy ?? 'Always'
    if (this.#terminating || policy === 'Never' || (policy === 'OnFailure' && exit.exitCode === 0)) {
      this.#finish(exit)
      return
    }
    const restarts = pod.status.containerStatuses?.[0]?.restartCount ?? 0
    const backoff = Math.min(BACKOFF_BASE_S * 2 ** restarts, BACKOFF_MAX_S)
    this.#update(p => { crashLooping(p, exit, backoff) })
    this.#timer = setTimeout(() => { this.run() }, backoff * 1000)
  }

  /** terminal status; a pod being deleted then leaves the API, as the kubelet's final delete does */
  #finish (exit: Exit | undefined): void {
    this.#update(p => { finished(p, exit) })
    if (this.#terminating) this.#deps.store.remove('pods', this.namespace, this.#name, this.uid)
  }

  #pod (): Pod | undefined {
    const pod = this.#deps.store.get<Pod>('pods', this.namespace, this.#name)
    return pod?.metadata.uid === this.uid ? pod : undefined
  }

  #update (change: (pod: Pod) => void): void {
    if (!this.#disposed) this.#deps.store.mutate<Pod>('pods', this.namespace, this.#name, change, this.uid)
  }

  #signalMain (signal: NodeJS.Signals): void {
    try { this.#child?.kill(signal) } catch { /* already gone */ }
  }

  #signalGroup (signal: NodeJS.Signals): void {
    const pid = this.#child?.pid
    if (pid === undefined) return
    try { process.kill(-pid, signal) } catch { /* ESRCH: nothing left in the group */ }
  }
}

const ids = new WeakMap<ChildProcess, string>()
function containerId (child: ChildProcess): string {
  let id = ids.get(child)
  if (id === undefined) ids.set(child, id = `containerd://${randomBytes(32).toString('hex')}`)
  return id
}

/** how the runtime resolves argv[0]: a path as given (relative to the container's root), else the first executable on PATH */
function findExecutable (name: string, path: string, root: string): string | undefined {
  const candidates = name.includes('/') ? [isAbsolute(name) ? name : resolve(root, name)] : path.split(delimiter).filter(d => d !== '').map(d => join(d, name))
  return candidates.find(file => {
    try {
      accessSync(file, fs.X_OK)
      return statSync(file).isFile()
    } catch {
      return false
    }
  })
}
