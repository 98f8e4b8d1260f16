import { basename } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { Worker } from 'node:worker_threads'
import type { Logger } from 'pino'
import { raceSignal } from '../../../protocols/common/signals.ts'
import type { FromThread, ThreadData, ToThread } from './module-protocol.ts'

/** Node 24 strips the types of a worker's .ts entry like those of any other module. */
const THREAD_SCRIPT = new URL('./module-thread.ts', import.meta.url)

/** The module could not be imported or has no run export: every shard of it would fail the same way. */
export class ModuleLoadError extends Error {
  override name = 'ModuleLoadError'
}

/** The run a thread is busy with: it gets the run's messages, and hears when the thread ends under it. */
interface ThreadJob {
  id: number
  onMessage: (message: FromThread) => void
  onEnd: (description: string) => void
}

export interface ModulePoolOptions {
  /** threads per module file: the node's slots, since it never runs more shards than that at once */
  maxThreads: number
  /** an idle thread exits after this long */
  idleMs: number
  log: Logger
}

export interface ModulePoolStats {
  /** threads started since the pool was made: a reused thread does not count again */
  threadsStarted: number
  threadsAlive: number
  threadsIdle: number
}

/** One worker thread with one module imported, running at most one shard at a time. */
export class ModuleThread {
  readonly worker: Worker
  /** settles once the module is imported: rejects with ModuleLoadError, or if the thread dies first */
  readonly ready: Promise<void>
  readonly exited: Promise<void>
  job: ThreadJob | undefined
  alive = true
  idleTimer: ReturnType<typeof setTimeout> | undefined
  /** why we ended it, for a run that is still going; unset when the thread ended on its own */
  private endedBecause: string | undefined
  private uncaught: Error | undefined

  constructor (modulePath: string, log: Logger, onExit: (thread: ModuleThread) => void) {
    const workerData: ThreadData = { modulePath }
    // stdout/stderr piped here so a module's console output lands in the debug log, not in the node's JSON log stream
    this.worker = new Worker(THREAD_SCRIPT, { workerData, stdout: true, stderr: true })
    const module = basename(modulePath)
    logLines(this.worker.stdout, (line) => { log.debug({ module, line }, 'module stdout') })
    logLines(this.worker.stderr, (line) => { log.debug({ module, line }, 'module stderr') })

    const ready = Promise.withResolvers<void>()
    this.ready = ready.promise
    this.ready.catch(() => {})
    this.worker.on('message', (message: FromThread) => {
      if (message.type === 'ready') ready.resolve()
      else if (message.type === 'load-failed') {
        ready.reject(new ModuleLoadError(message.message))
        this.end('its module could not be loaded')
      } else if (this.job !== undefined && message.id === this.job.id) this.job.onMessage(message)
    })
    // an uncaught exception in the thread: 'exit' follows, and reports it
    this.worker.on('error', (err) => { this.uncaught = err })
    // not events.once(): it rejects on the 'error' that comes before 'exit'
    const exited = Promise.withResolvers<void>()
    this.exited = exited.promise
    this.worker.on('exit', (code) => {
      exited.resolve()
      this.alive = false
      clearTimeout(this.idleTimer)
      const description = this.describeExit(code)
      // ended by itself while importing: the module's own doing (a top-level process.exit or throw in a callback)
      ready.reject(this.endedBecause === undefined ? new ModuleLoadError(`while being imported, ${description}`) : new Error(description))
      this.job?.onEnd(description)
      this.job = undefined
      onExit(this)
    })
  }

  post (message: ToThread): void {
    if (this.alive) this.worker.postMessage(message)
  }

  /** Terminates the thread; `reason` is what a run still in it is told. */
  end (reason: string): void {
    this.endedBecause ??= reason
    void this.worker.terminate()
  }

  private describeExit (code: number): string {
    if (this.endedBecause !== undefined) return this.endedBecause
    if (this.uncaught !== undefined) {
      const { name, message } = this.uncaught
      return `the module threw outside run() (in a callback or an unhandled promise), which ended its worker thread: ${name}: ${message}`
    }
    return `the module ended its worker thread (process.exit(${code}))`
  }
}

interface Pool {
  path: string
  threads: Set<ModuleThread>
  /** most recently used last: reuse takes it, so the least used ones time out */
  idle: ModuleThread[]
  waiting: Array<() => void>
}

/** A small pool of threads per module file, reused across shards. */
export class ModulePools {
  /** kept when empty: an entry per module file this node has run is small, and a release never finds it gone */
  private readonly pools = new Map<string, Pool>()
  private readonly opts: ModulePoolOptions
  private threadsStarted = 0
  private closed = false

  constructor (opts: ModulePoolOptions) {
    this.opts = opts
  }

  /** A thread with `modulePath` imported, ready for one run; hand it back with release(). */
  async acquire (modulePath: string, signal: AbortSignal): Promise<ModuleThread> {
    const pool = this.poolFor(modulePath)
    for (;;) {
      if (this.closed) throw new Error('the module runner is closed; no more shards run on it')
      signal.throwIfAborted()
      const idle = pool.idle.pop()
      if (idle !== undefined) {
        clearTimeout(idle.idleTimer)
        idle.worker.ref()
        return idle
      }
      if (pool.threads.size < this.opts.maxThreads) return await this.start(pool, signal)
      await this.waitTurn(pool, signal)
    }
  }

  release (thread: ModuleThread, modulePath: string): void {
    const pool = this.pools.get(modulePath)
    thread.job = undefined
    if (!thread.alive || pool === undefined) return
    if (this.closed) {
      thread.end('the module runner was closed')
      return
    }
    pool.idle.push(thread)
    // an idle thread must not keep the process alive
    thread.worker.unref()
    thread.idleTimer = setTimeout(() => { thread.end(`idle for ${this.opts.idleMs} ms`) }, this.opts.idleMs)
    thread.idleTimer.unref()
    pool.waiting.shift()?.()
  }

  stats (): ModulePoolStats {
    let alive = 0
    let idle = 0
    for (const pool of this.pools.values()) {
      alive += pool.threads.size
      idle += pool.idle.length
    }
    return { threadsStarted: this.threadsStarted, threadsAlive: alive, threadsIdle: idle }
  }

  async close (): Promise<void> {
    this.closed = true
    const exits: Array<Promise<void>> = []
    for (const pool of this.pools.values()) {
      for (const wake of pool.waiting.splice(0)) wake()
      for (const thread of pool.threads) {
        thread.end('the module runner was closed while the shard ran')
        exits.push(thread.exited)
      }
    }
    await Promise.all(exits)
  }

  private poolFor (path: string): Pool {
    let pool = this.pools.get(path)
    if (pool === undefined) {
      pool = { path, threads: new Set(), idle: [], waiting: [] }
      this.pools.set(path, pool)
    }
    return pool
  }

  private async start (pool: Pool, signal: AbortSignal): Promise<ModuleThread> {
    const thread = new ModuleThread(pool.path, this.opts.log, (ended) => {
      pool.threads.delete(ended)
      const at = pool.idle.indexOf(ended)
      if (at >= 0) pool.idle.splice(at, 1)
      // a slot came free: whoever waits starts a thread in its place
      pool.waiting.shift()?.()
    })
    pool.threads.add(thread)
    this.threadsStarted++
    try {
      await raceSignal(thread.ready, signal)
      return thread
    } catch (err) {
      thread.end('the shard was cancelled while its thread started')
      throw err
    }
  }

  private async waitTurn (pool: Pool, signal: AbortSignal): Promise<void> {
    const turn = Promise.withResolvers<void>()
    pool.waiting.push(turn.resolve)
    try {
      await raceSignal(turn.promise, signal)
    } finally {
      const at = pool.waiting.indexOf(turn.resolve)
      if (at >= 0) pool.waiting.splice(at, 1)
    }
  }
}

function logLines (stream: Readable, log: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => { if (line.trim() !== '') log(line.slice(0, 2000)) })
}
