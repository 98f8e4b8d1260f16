import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { Worker, type Transferable } from 'node:worker_threads'
import type { Logger } from 'pino'
import { raceSignal } from '../../../protocols/common/signals.ts'

/**
 * Worker threads pooled per key (a module file, a model and its providers),
 * shared by the module and ONNX runners. A thread loads what its key names
 * once, says 'ready' (or 'load-failed'), then runs one shard at a time for as
 * long as the pool keeps it (a run on it: thread-run.ts); every message of a
 * run carries the run's id, so a late message from a run already settled is
 * recognised and ignored.
 */

/** The first message a thread posts; `R` is what it reports about what it loaded. */
export type StartMessage<R> = ({ type: 'ready' } & R) | { type: 'load-failed', message: string }

/** Every later message of a thread belongs to a run. */
export interface RunMessage {
  type: string
  id: number
}

/** What the parent posts to a run that must stop. */
export interface AbortMessage {
  type: 'abort'
  id: number
  reason: { name: string, message: string }
}

/** What the parent posts to a thread of a kind that stops by itself ('ask'): exit at your next turn. */
export interface ExitMessage {
  type: 'exit'
}

/** The thread could not load what its key names: every shard of that key would fail the same way. */
export class ThreadLoadError extends Error {
  override name = 'ThreadLoadError'
}

/** What differs between the runners' threads. `D` is a thread's workerData. */
export interface ThreadKind<D> {
  /** what the threads run, for errors and logs: 'module' makes 'the module runner is closed' */
  name: string
  script: URL
  /** fields that tell, in the debug log, whose console output a line is */
  logFields: (data: D) => Record<string, unknown>
  /** why the thread ended, when the pool did not end it: an uncaught error, else its exit code */
  describeExit: (code: number, uncaught: Error | undefined) => string
  /** what starting a thread failed with when it ended, by itself, before it was ready */
  startError: (description: string) => Error
  /**
   * How the pool ends a thread. 'terminate' interrupts it wherever it is.
   * 'ask' posts an ExitMessage, and the thread exits from that message's
   * handler: for threads that spend their time in native calls that must not
   * be interrupted (terminating a thread inside an onnxruntime-node call
   * aborts the whole process), a thread so asked exits once its current call
   * returns.
   */
  stop: 'terminate' | 'ask'
}

/** The run a thread is busy with: it gets the run's messages, and hears when the thread ends under it. */
interface ThreadJob<M> {
  id: number
  onMessage: (message: M) => void
  onEnd: (description: string) => void
}

export interface ThreadPoolStats {
  /** threads started since the pool was made: a reused thread does not count again */
  threadsStarted: number
  threadsAlive: number
  threadsIdle: number
}

/** One worker thread, running at most one shard at a time. `R`: its ready report; `M`: its run messages. */
export class PoolThread<D, R, M extends RunMessage> {
  readonly worker: Worker
  /** resolves to the thread's ready report; rejects with ThreadLoadError, or the kind's startError if the thread dies first */
  readonly ready: Promise<R>
  readonly exited: Promise<void>
  job: ThreadJob<M> | undefined
  alive = true
  idleTimer: ReturnType<typeof setTimeout> | undefined
  /** why we ended it, for a run that is still going; unset when the thread ended on its own */
  private endedBecause: string | undefined
  private uncaught: Error | undefined
  private readonly stop: ThreadKind<D>['stop']

  constructor (kind: ThreadKind<D>, workerData: D, log: Logger, onExit: (thread: PoolThread<D, R, M>) => void) {
    this.stop = kind.stop
    // stdout/stderr piped here so a thread's console output lands in the debug log, not in the node's JSON log stream
    this.worker = new Worker(kind.script, { workerData, stdout: true, stderr: true })
    const fields = kind.logFields(workerData)
    logLines(this.worker.stdout, (line) => { log.debug({ ...fields, line }, `${kind.name} stdout`) })
    logLines(this.worker.stderr, (line) => { log.debug({ ...fields, line }, `${kind.name} stderr`) })

    const ready = Promise.withResolvers<R>()
    this.ready = ready.promise
    this.ready.catch(() => {})
    this.worker.on('message', (message: StartMessage<R> | M) => {
      if (message.type === 'ready') ready.resolve(message as R)
      else if (message.type === 'load-failed') {
        ready.reject(new ThreadLoadError((message as { message: string }).message))
        this.end('it could not load what it runs')
      } else if (this.job !== undefined && (message as M).id === this.job.id) this.job.onMessage(message as M)
    })
    // an uncaught exception in the thread (or it ran out of heap): 'exit' follows, and reports it
    this.worker.on('error', (err) => { this.uncaught = err })
    // not events.once(): it rejects on the 'error' that comes before 'exit'
    const exited = Promise.withResolvers<void>()
    this.exited = exited.promise
    this.worker.on('exit', (code) => {
      exited.resolve()
      this.alive = false
      clearTimeout(this.idleTimer)
      const description = this.endedBecause ?? kind.describeExit(code, this.uncaught)
      ready.reject(this.endedBecause === undefined ? kind.startError(description) : new Error(description))
      this.job?.onEnd(description)
      this.job = undefined
      onExit(this)
    })
  }

  post (message: unknown, transfer?: readonly Transferable[]): void {
    if (this.alive) this.worker.postMessage(message, transfer)
  }

  /** Ends the thread (see ThreadKind.stop); `reason` is what a run still in it is told. */
  end (reason: string): void {
    this.endedBecause ??= reason
    if (this.stop === 'terminate') void this.worker.terminate()
    else this.post({ type: 'exit' } satisfies ExitMessage)
  }
}

interface Pool<T> {
  threads: Set<T>
  /** most recently used last: reuse takes it, so the least used ones time out */
  idle: T[]
  waiting: Array<() => void>
}

export interface ThreadPoolOptions<D, R> {
  /** threads per key: the node's slots, since it never runs more shards than that at once */
  maxThreads: number
  /** an idle thread exits after this long */
  idleMs: number
  log: Logger
  /** a new thread is ready: its first shard is about to run on it */
  onReady?: (ready: R, data: D) => void
}

/** Threads per key, started on demand up to maxThreads, reused across shards, ended when idle. */
export class ThreadPools<D, R, M extends RunMessage> {
  /** kept when empty: an entry per key this node has run is small, and a release never finds it gone */
  private readonly pools = new Map<string, Pool<PoolThread<D, R, M>>>()
  private readonly kind: ThreadKind<D>
  private readonly opts: ThreadPoolOptions<D, R>
  private threadsStarted = 0
  private closed = false

  constructor (kind: ThreadKind<D>, opts: ThreadPoolOptions<D, R>) {
    this.kind = kind
    this.opts = opts
  }

  /** A ready thread for `key` (started with `data` if one must be), for one run; hand it back with release(). */
  async acquire (key: string, data: D, signal: AbortSignal): Promise<PoolThread<D, R, M>> {
    const pool = this.poolFor(key)
    for (;;) {
      if (this.closed) throw new Error(`the ${this.kind.name} runner is closed; no more shards run on it`)
      signal.throwIfAborted()
      const idle = pool.idle.pop()
      if (idle !== undefined) {
        clearTimeout(idle.idleTimer)
        idle.worker.ref()
        return idle
      }
      if (pool.threads.size < this.opts.maxThreads) return await this.start(pool, data, signal)
      await this.waitTurn(pool, signal)
    }
  }

  release (thread: PoolThread<D, R, M>, key: string): void {
    const pool = this.pools.get(key)
    thread.job = undefined
    if (!thread.alive || pool === undefined) return
    if (this.closed) {
      thread.end(`the ${this.kind.name} runner was closed`)
      return
    }
    pool.idle.push(thread)
    // an idle thread must not keep the process alive
    thread.worker.unref()
    thread.idleTimer = setTimeout(() => { thread.end(`idle for ${this.opts.idleMs} ms`) }, this.opts.idleMs)
    thread.idleTimer.unref()
    pool.waiting.shift()?.()
  }

  stats (): ThreadPoolStats {
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
        thread.end(`the ${this.kind.name} runner was closed while the shard ran`)
        exits.push(thread.exited)
      }
    }
    await Promise.all(exits)
  }

  private poolFor (key: string): Pool<PoolThread<D, R, M>> {
    let pool = this.pools.get(key)
    if (pool === undefined) {
      pool = { threads: new Set(), idle: [], waiting: [] }
      this.pools.set(key, pool)
    }
    return pool
  }

  private async start (pool: Pool<PoolThread<D, R, M>>, data: D, signal: AbortSignal): Promise<PoolThread<D, R, M>> {
    const thread = new PoolThread<D, R, M>(this.kind, data, this.opts.log, (ended) => {
      pool.threads.delete(ended)
      const at = pool.idle.indexOf(ended)
      if (at >= 0) pool.idle.splice(at, 1)
      // a slot came free: whoever waits starts a thread in its place
      pool.waiting.shift()?.()
    })
    pool.threads.add(thread)
    this.threadsStarted++
    let ready: R
    try {
      ready = await raceSignal(thread.ready, signal)
    } catch (err) {
      thread.end('the shard was cancelled while its thread started')
      throw err
    }
    this.opts.onReady?.(ready, data)
    return thread
  }

  private async waitTurn (pool: Pool<PoolThread<D, R, M>>, signal: AbortSignal): Promise<void> {
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
