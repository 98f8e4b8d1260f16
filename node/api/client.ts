import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { dataPaths, readNodeInfo } from '../datadir.ts'

export class ApiClientError extends Error {
  override name = 'ApiClientError'
  readonly status: number | undefined
  constructor (message: string, status?: number) {
    super(message)
    this.status = status
  }
}

export interface ApiTarget {
  url: string
  token: string
}

/**
 * Where the CLI finds a node: `--api URL --token T`, or the node.json and
 * api-token files in a data dir (what `zp-node start` writes).
 */
export async function resolveApiTarget (opts: { dataDir: string, api?: string, token?: string }): Promise<ApiTarget> {
  if (opts.api != null) {
    if (opts.token == null) throw new ApiClientError('--api needs --token too (the node\'s token is in <data-dir>/api-token)')
    return { url: opts.api.replace(/\/+$/, ''), token: opts.token }
  }
  const info = await readNodeInfo(opts.dataDir)
  if (info == null) {
    throw new ApiClientError(`no running node found in ${opts.dataDir} (no node.json); start one with 'zp-node start --data-dir ${opts.dataDir}', or pass --data-dir / --api URL --token T`)
  }
  if (!pidAlive(info.pid)) {
    throw new ApiClientError(`the node in ${opts.dataDir} is not running (node.json names pid ${info.pid}, which has exited); start it again with 'zp-node start --data-dir ${opts.dataDir}'`)
  }
  if (info.api == null) throw new ApiClientError(`the node in ${opts.dataDir} runs without a control API (--no-api)`)
  let token: string
  try {
    token = (await readFile(dataPaths(opts.dataDir).token, 'utf8')).trim()
  } catch (err) {
    throw new ApiClientError(`cannot read the API token in ${dataPaths(opts.dataDir).token}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (run zp as the user that runs the node)`)
  }
  return { url: info.api, token }
}

function pidAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A small JSON client for the control API, with a timeout on every call. */
export class ApiClient {
  readonly #target: ApiTarget
  constructor (target: ApiTarget) {
    this.#target = target
  }

  async request<T> (method: string, path: string, opts: { body?: unknown, timeoutMs?: number, signal?: AbortSignal } = {}): Promise<T> {
    const res = await this.#fetch(method, path, opts)
    return parseBody(await res.text()) as T
  }

  /** The response body as a stream (result exports can be large), with its headers; errors as for request(). */
  async raw (method: string, path: string, opts: { signal?: AbortSignal } = {}): Promise<{ body: Readable, headers: Headers }> {
    const res = await this.#fetch(method, path, { ...opts, timeoutMs: 24 * 3600_000 })
    return { body: res.body != null ? Readable.fromWeb(res.body as WebReadableStream) : Readable.from([]), headers: res.headers }
  }

  async #fetch (method: string, path: string, opts: { body?: unknown, timeoutMs?: number, signal?: AbortSignal }): Promise<Response> {
    const signals = [AbortSignal.timeout(opts.timeoutMs ?? 15_000), ...(opts.signal != null ? [opts.signal] : [])]
    let res: Response
    try {
      res = await fetch(this.#target.url + path, {
        method,
        headers: { authorization: `Bearer ${this.#target.token}`, ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        signal: AbortSignal.any(signals)
      })
    } catch (err) {
      const why = (err as Error).name === 'TimeoutError' ? 'timed out' : ((err as { cause?: Error }).cause?.message ?? (err as Error).message)
      throw new ApiClientError(`cannot reach the node's control API at ${this.#target.url} (${why}); is the node running?`)
    }
    if (!res.ok) {
      const text = await res.text()
      const message = (parseBody(text) as { message?: string } | undefined)?.message ?? text
      if (res.status === 401) throw new ApiClientError(`the node refused the API token: ${message}`, 401)
      throw new ApiClientError(message, res.status)
    }
    return res
  }

  async get<T> (path: string, opts?: { timeoutMs?: number, signal?: AbortSignal }): Promise<T> {
    return await this.request<T>('GET', path, opts)
  }
}

function parseBody (text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
