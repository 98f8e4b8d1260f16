import { constants, hostname } from 'node:os'
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { createRunners, ShardFailure, type ExecTemplates, type Runners } from '../../actors/worker/runners/index.ts'
import { shardLabel } from '../../actors/worker/runners/shard-label.ts'
import { shardFiles, shardTask, type Task } from '../../actors/worker/task.ts'
import { commitShardOutput, readManifest, readShardEntry, writeShardError, type Manifest } from '../../bootstrap/slurm/manifest.ts'
import { detachedBlobs } from '../../bootstrap/slurm/shard-blobs.ts'
import { describeError } from '../../protocols/common/errors.ts'
import { deadline } from '../../protocols/common/signals.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { ExecConfigError, loadExecConfig } from '../exec-config.ts'
import { createLogger } from '../logger.ts'
import { baselineHost } from '../probe/cpu.ts'
import { probeOnnx } from '../probe/onnx.ts'
import { UsageError } from './errors.ts'

/**
 * `zp-node run-shard`: one shard of a detached campaign (a Slurm array task
 * on a compute node that cannot reach the mesh), run by the runners a mesh
 * worker uses, its result committed to the shared folder. The exit code is
 * what the coordinator's executor goes by: 0 done, 1 failed (retry it),
 * 3 failed for good, 128 + n killed by signal n (SIGTERM: 143).
 */

export interface RunShardFlags {
  manifest: string
  index: string
  execConfig?: string
  logLevel?: string
}

export const EXIT_RETRYABLE = 1
export const EXIT_NOT_RETRYABLE = 3

/** how long closing the runners may take once the shard is over (an ORT thread finishes its batch first) */
const CLOSE_GRACE_MS = 5_000
const PROBE_TIMEOUT_MS = 15_000
const PROGRESS_LOG_MS = 10_000

/** The first SIGTERM or SIGINT aborts the shard (its error file says so); a second one exits at once. */
class Terminated extends Error {
  override name = 'Terminated'
  readonly code: number
  constructor (signal: NodeJS.Signals) {
    super(`terminated by ${signal} before the shard finished (scancel, preemption or the job's time limit)`)
    this.code = 128 + constants.signals[signal]
  }
}

export async function runShardMain (flags: RunShardFlags): Promise<never> {
  const stop = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop.signal.aborted) process.exit(128 + constants.signals[signal])
    stop.abort(new Terminated(signal))
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  process.exit(await runShard(flags, stop.signal))
}

/** Runs the shard; resolves with the exit code. Throws only when there is no shard to run (bad flags, no manifest or entry). */
export async function runShard (flags: RunShardFlags, signal: AbortSignal): Promise<number> {
  const index = Number(flags.index)
  if (!/^\d+$/.test(flags.index) || !Number.isSafeInteger(index)) throw new UsageError(`--index takes a shard index (0 or more), got '${flags.index}'`)
  const dir = resolve(flags.manifest)
  const manifest = await readManifest(dir)
  const entry = await readShardEntry(dir, index)
  // logs go to stdout (the job's output file); stderr keeps the one line that says why it failed
  const log = createLogger({ level: flags.logLevel as 'info' | undefined, base: { campaign: manifest.campaignId, shard: index, attempt: entry.attempt } })
  const task: Task = {
    key: `${manifest.campaignId}:${index}`,
    campaignId: manifest.campaignId,
    campaignName: manifest.name,
    // no coordinator to fetch from: the files are in the folder
    coordinator: dir,
    workload: manifest.workload,
    params: manifest.params,
    lease: { shard: entry.shard, attempt: entry.attempt, epoch: 0, timeoutMs: manifest.shardTimeoutMs, ...(entry.resumeFrom !== undefined ? { resumeFrom: entry.resumeFrom } : {}) },
    abort: new AbortController()
  }
  try {
    return await run(dir, manifest, task, flags, signal, log)
  } finally {
    await new Promise<void>(resolve => { log.flush(() => { resolve() }) })
  }
}

async function run (dir: string, manifest: Manifest, task: Task, flags: RunShardFlags, signal: AbortSignal, log: Logger): Promise<number> {
  const { shard, attempt } = task.lease
  const label = shardLabel(shardTask(task, {}))
  const started = performance.now()
  const limit = deadline(manifest.shardTimeoutMs, signal)
  let runners: Runners | undefined
  try {
    const execTemplates = await templates(manifest.workload, flags.execConfig, label)
    const files = await shardFiles(detachedBlobs(dir, manifest), task, limit.signal)
    const capabilities = manifest.workload.kind === 'onnx' ? await probe(log, limit.signal) : null
    // one shard per process: the runners may use every core Slurm gave the task
    runners = createRunners({ capabilities: () => capabilities, slots: 1, execTemplates, log })
    log.info({ kind: manifest.workload.kind, start: shard.start, end: shard.end }, 'running the shard')
    let lastProgress = 0
    const output = await runners[manifest.workload.kind].run(shardTask(task, files), {
      signal: limit.signal,
      log,
      progress: (fraction) => {
        if (Date.now() - lastProgress < PROGRESS_LOG_MS) return
        lastProgress = Date.now()
        log.info({ fraction }, 'shard progress')
      }
    })
    const durationMs = performance.now() - started
    await commitShardOutput(dir, shard.index, output, { attempt, durationMs, host: hostname() })
    log.info({ rows: output.rows.length, durationMs: Math.round(durationMs) }, 'shard done')
    return 0
  } catch (err) {
    const terminated = signal.aborted && signal.reason instanceof Terminated ? signal.reason : undefined
    const timedOut = limit.signal.aborted && !signal.aborted
    const error = terminated != null
      ? `${label}: ${terminated.message}`
      : timedOut ? `${label}: timed out after ${manifest.shardTimeoutMs} ms (the campaign's shardTimeout)` : describeError(err)
    const retryable = terminated != null || timedOut || !(err instanceof ShardFailure) || err.retryable
    log.warn({ err: error, retryable }, 'shard failed')
    await writeShardError(dir, shard.index, attempt, { error, retryable }).catch((writeErr: unknown) => {
      log.error({ err: describeError(writeErr) }, 'cannot write the shard\'s error file')
    })
    process.stderr.write(`zp-node run-shard: error: ${error}${retryable ? '' : ' (not retryable)'}\n`)
    return terminated?.code ?? (retryable ? EXIT_RETRYABLE : EXIT_NOT_RETRYABLE)
  } finally {
    limit.clear()
    if (runners != null) await closeRunners(runners)
  }
}

/** An exec workload's template, from --exec-config: the command line never comes from the manifest. */
export async function templates (workload: Manifest['workload'], file: string | undefined, label: string): Promise<ExecTemplates> {
  if (workload.kind !== 'exec') return {}
  const name = workload.command
  if (file == null) {
    throw new ShardFailure(`${label}: exec command '${name}' needs --exec-config FILE (the format of zp-node --exec-config) with '${name}' under commands:`, { retryable: false })
  }
  let loaded: ExecTemplates
  try {
    loaded = await loadExecConfig(file)
  } catch (err) {
    if (err instanceof ExecConfigError) throw new ShardFailure(`${label}: ${err.message}`, { retryable: false })
    throw err
  }
  if (!Object.hasOwn(loaded, name)) {
    const has = Object.keys(loaded)
    throw new ShardFailure(`${label}: ${file} has no command '${name}' (it has: ${has.length > 0 ? has.join(', ') : 'none'}); add it under commands:`, { retryable: false })
  }
  return loaded
}

/**
 * The ONNX runner picks its execution provider from the node's probe, so an
 * array task on a GPU node runs on the GPU as a mesh worker there would.
 * Only the ORT providers are probed (what the runner reads): one child
 * process, about 0.2 s on a CPU node, against a fixed cpu-only report that
 * would leave a GPU partition's GPUs idle.
 */
export async function probe (log: Logger, signal: AbortSignal): Promise<CapabilityReport> {
  const started = performance.now()
  const capabilities = await probeOnnx({ timeoutMs: PROBE_TIMEOUT_MS, signal, logger: log })
  const durationMs = Math.round(performance.now() - started)
  log.info({ durationMs, usable: Object.keys(capabilities).filter(k => capabilities[k]?.status === 'ok') }, 'probed the ONNX execution providers')
  return { probedAt: Date.now(), durationMs, host: baselineHost(), capabilities }
}

/** Closes the runners' threads; one stuck in native code is left to the process exit. */
export async function closeRunners (runners: Runners): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([
    Promise.all(Object.values(runners).map(async r => { await r.close() })),
    new Promise<void>(resolve => { timer = setTimeout(resolve, CLOSE_GRACE_MS) })
  ])
  clearTimeout(timer)
}
