import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseRanges } from '../actors/coordinator/ranges.ts'

/**
 * Polls `condition` until it returns a truthy value or the deadline passes.
 * Deadlines are generous on purpose: CI is a loaded 2-core machine.
 */
export async function waitFor<T> (condition: () => T | Promise<T>, opts: { timeoutMs?: number, intervalMs?: number, what?: string } = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const started = Date.now()
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value != null && value !== false) return value as NonNullable<T>
      last = value
    } catch (err) {
      last = err
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`)
    }
    await new Promise(resolve => setTimeout(resolve, opts.intervalMs ?? 100))
  }
}

export async function tempDir (prefix = 'zp-test-'): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: async () => { await rm(path, { recursive: true, force: true }) } }
}

/** Shard indexes from an audit record's ranges (`0-63,65`). */
export const shardsOf = parseRanges

/** Every shard a campaign's audit records as done (its `results` records), in log order. */
export function auditedResults (records: ReadonlyArray<Record<string, unknown>>): number[] {
  return records.filter(r => r.type === 'results').flatMap(r => shardsOf(r.shards))
}

/** A TCP port free on 127.0.0.1 now (for programs that cannot be told port 0, like Caddy and Prometheus). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

/** SIGTERM to a child a test started (Caddy, Prometheus), then its exit; nothing when it has exited already. */
export async function stopProcess (child: ChildProcess | undefined): Promise<void> {
  if (child == null || child.exitCode != null || child.signalCode != null) return
  const exited = new Promise(resolve => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}
