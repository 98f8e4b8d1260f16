import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { readNodeInfo, type NodeInfo } from '../node/datadir.ts'
import { delay } from '../protocols/common/signals.ts'

export const ZP_NODE_BIN = fileURLToPath(new URL('../node/bin/zp-node.mjs', import.meta.url))
export const ZP_BIN = fileURLToPath(new URL('../node/bin/zp.mjs', import.meta.url))

export interface LocalNodeSpec {
  name: string
  dataDir: string
  /** `start` (default), or `join` through this bootstrap address (`true`: join with none, for `--mdns`) */
  join?: string | true
  /** more zp-node flags */
  args?: string[]
  env?: NodeJS.ProcessEnv
  /** where its console output goes (default `<dataDir>.out`) */
  outFile?: string
  /** the libp2p listen address (default `/ip4/127.0.0.1/tcp/0`) */
  listen?: string
  /** a command that runs the node, e.g. `['ip', 'netns', 'exec', 'ns1']`; it must exec it in place, so `pid` stays the node's */
  wrap?: string[]
}

/**
 * A `zp-node` child process on this machine, on loopback with OS-chosen ports.
 * Its console output goes to `<dataDir>.out` so a failure can be explained.
 */
export class LocalNode {
  readonly name: string
  readonly dataDir: string
  readonly outFile: string
  readonly proc: ChildProcess
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  info: NodeInfo | undefined

  private constructor (spec: LocalNodeSpec, proc: ChildProcess, outFile: string) {
    this.name = spec.name
    this.dataDir = spec.dataDir
    this.proc = proc
    this.outFile = outFile
    this.exited = new Promise(resolve => proc.once('exit', (code, signal) => { resolve({ code, signal }) }))
  }

  static async spawn (spec: LocalNodeSpec): Promise<LocalNode> {
    await mkdir(spec.dataDir, { recursive: true })
    const outFile = spec.outFile ?? `${spec.dataDir}.out`
    const fd = openSync(outFile, 'a')
    const command = spec.join === true ? ['join'] : spec.join != null ? ['join', spec.join] : ['start']
    const args = [
      ZP_NODE_BIN, ...command,
      '--name', spec.name,
      '--data-dir', spec.dataDir,
      '--listen', spec.listen ?? '/ip4/127.0.0.1/tcp/0',
      '--api', '127.0.0.1:0',
      ...(spec.args ?? [])
    ]
    const [file, ...argv] = [...(spec.wrap ?? []), process.execPath, ...args]
    const proc = spawn(file!, argv, { stdio: ['ignore', fd, fd], env: { ...process.env, ...spec.env } })
    closeSync(fd)
    return new LocalNode(spec, proc, outFile)
  }

  get pid (): number {
    return this.proc.pid ?? -1
  }

  /** Waits for this process's node.json (written once the node runs). */
  async ready (opts: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<NodeInfo> {
    const until = Date.now() + (opts.timeoutMs ?? 60_000)
    let exited = false
    void this.exited.then(() => { exited = true })
    while (Date.now() < until) {
      opts.signal?.throwIfAborted()
      const info = await readNodeInfo(this.dataDir).catch(() => undefined)
      if (info?.pid === this.pid && info.api != null) {
        this.info = info
        return info
      }
      if (exited) throw new Error(`zp-node '${this.name}' exited before it was ready:\n${await this.output()}`)
      await delay(50, opts.signal)
    }
    throw new Error(`zp-node '${this.name}' was not ready within ${opts.timeoutMs ?? 60_000} ms:\n${await this.output()}`)
  }

  /** The last lines it printed. */
  async output (lines = 30): Promise<string> {
    const text = await readFile(this.outFile, 'utf8').catch(() => '')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  }

  kill (signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.proc.exitCode == null && this.proc.signalCode == null) this.proc.kill(signal)
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop (graceMs = 20_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    this.kill('SIGTERM')
    const timer = setTimeout(() => { this.kill('SIGKILL') }, graceMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}
