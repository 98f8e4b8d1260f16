import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../logger.ts'
import { ChildLineSchema, epKey, onnxCandidates } from './onnx-eps.ts'
import { failed, type Capabilities } from './types.ts'
import type { Capability } from '../../protocols/membership/capabilities.ts'

export interface OnnxProbeOptions {
  timeoutMs: number
  logger: Logger
  signal?: AbortSignal
  /** the script run in the child; tests substitute one that crashes or hangs */
  childScript?: string
}

const CHILD_SCRIPT = fileURLToPath(new URL('./onnx-child.ts', import.meta.url))
const STDERR_TAIL_CHARS = 2000

/**
 * `onnx.ep.<name>` for each execution provider, tried in a child process
 * (onnx-child.ts) because a native provider can hang or crash whoever loads it.
 * The child reports one provider per line; a provider it never reported (it
 * crashed, hung, or was killed on timeout) becomes an error entry saying so,
 * and the ones reported before still count.
 */
export async function probeOnnx (opts: OnnxProbeOptions): Promise<Capabilities> {
  opts.signal?.throwIfAborted()
  const { logger, timeoutMs } = opts
  // until the child lists its candidates, assume the ones every build is tried for
  let candidates = onnxCandidates(process.platform, [])
  const results = new Map<string, Capability>()
  let stderrTail = ''

  return await new Promise<Capabilities>((resolve, reject) => {
    let child: ChildProcessByStdio<null, Readable, Readable> | undefined
    let settled = false
    const finish = (settle: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      settle()
    }
    const report = (missing: string): void => {
      const caps: Capabilities = {}
      for (const ep of candidates) caps[epKey(ep)] = results.get(ep) ?? failed(missing)
      for (const [ep, cap] of results) caps[epKey(ep)] = cap
      finish(() => resolve(caps))
    }
    const onAbort = (): void => { finish(() => reject(opts.signal?.reason)) }
    // report at once rather than on 'close': a child stuck in a driver call may not even die promptly
    const timer = setTimeout(() => { report(`timed out after ${timeoutMs}ms (the ORT probe child was killed before it reported this provider)`) }, timeoutMs)
    opts.signal?.addEventListener('abort', onAbort, { once: true })

    const couldNotStart = (err: Error): void => { report(`could not start the ORT probe child (${process.execPath}): ${err.message}`) }
    try {
      child = spawn(process.execPath, [opts.childScript ?? CHILD_SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true })
    } catch (err) {
      couldNotStart(err instanceof Error ? err : new Error(String(err)))
      return
    }

    const onLine = (line: string): void => {
      if (line.trim() === '') return
      let parsed
      try {
        parsed = ChildLineSchema.safeParse(JSON.parse(line))
      } catch {
        parsed = undefined
      }
      if (parsed?.success !== true) {
        // native libraries may print to stdout too; only our JSON lines count
        logger.debug({ line: line.slice(0, 500) }, 'ORT probe child printed a line that is not a probe result')
        return
      }
      const msg = parsed.data
      if (msg.type === 'candidates') candidates = msg.eps
      else if (msg.type === 'result') results.set(msg.ep, msg.capability)
      else report('the probe child finished without reporting this provider')
    }

    let pending = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) onLine(line)
    })
    child.stdout.on('end', () => { onLine(pending) })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk: string) => {
      logger.debug({ stderr: chunk.trim().slice(0, 2000) }, 'ORT probe child stderr')
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_CHARS)
    })

    child.on('error', couldNotStart)
    // 'close' comes after stdout has ended, so every line the child printed has been seen
    child.on('close', (code, signal) => {
      // ORT colours its log lines; the escape codes would otherwise end up in the report
      const lastStderr = stderrTail.replace(/\x1b\[[0-9;]*m/g, '').split('\n').map((l) => l.trim()).filter((l) => l !== '').at(-1)
      const stderrNote = lastStderr === undefined ? '' : `; last stderr line: ${lastStderr}`
      if (signal !== null) report(`probe child exited with signal ${signal} before reporting${stderrNote}`)
      else report(`probe child exited with code ${code ?? 'unknown'} before reporting${stderrNote}`)
    })
  })
}
