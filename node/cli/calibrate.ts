import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { pino, type Logger } from 'pino'
import { ShardPlan } from '../../actors/coordinator/plan.ts'
import { createRunners, ShardFailure, type Runners } from '../../actors/worker/runners/index.ts'
import { shardFiles, shardTask, type ShardBlobs, type Task } from '../../actors/worker/task.ts'
import type { Shard } from '../../protocols/campaign/shard.ts'
import { describeError } from '../../protocols/common/errors.ts'
import { deadline } from '../../protocols/common/signals.ts'
import { calibrationIndexes, type ShardSample } from '../campaign/cost.ts'
import { resolveCampaign, type LoadedCampaign } from '../campaign/load.ts'
import { UsageError } from './errors.ts'
import { closeRunners, probe, templates } from './run-shard.ts'

/**
 * Runs a few shards of a campaign here, with the runners a mesh worker uses
 * (worker threads for modules, onnxruntime, exec templates), one after
 * another, and measures each one's wall and CPU time. The files are read
 * where they are: nothing is stored or sent.
 */

export interface CalibrateOptions {
  /** shards to run */
  count: number
  /** exec workloads: the template file (zp-node --exec-config's format) */
  execConfig?: string
  /** stops the shard running and the calibration (Ctrl-C) */
  signal: AbortSignal
  /** before and after each shard, for progress on stderr */
  onShard?: (event: { index: number, n: number, of: number, sample?: ShardSample }) => void
}

export class CalibrationError extends Error {
  override name = 'CalibrationError'
}

function shardPlan (loaded: LoadedCampaign): ShardPlan {
  return new ShardPlan(loaded.sharding, { rows: loaded.data?.rows, offsets: loaded.data?.offsets })
}

export async function calibrate (loaded: LoadedCampaign, opts: CalibrateOptions): Promise<ShardSample[]> {
  const plan = shardPlan(loaded)
  const full = Math.floor(plan.items / loaded.sharding.perShard)
  const indexes = calibrationIndexes(plan.count, full, opts.count)
  // each file named by a digest of its path: the runners read it in place, so its content is not hashed
  const paths = new Map<string, string>()
  const spec = await resolveCampaign(loaded, async (path, name) => {
    const hash = createHash('sha256').update(path).digest('hex')
    paths.set(hash, path)
    return { hash, size: (await stat(path)).size, name }
  })
  const local = (hash: string): string => paths.get(hash)!
  const blobs: ShardBlobs = {
    fetch: async (_from, ref) => local(ref.hash),
    fetchSlice: async (_from, ref, range) => ({ path: local(ref.hash), start: range.start, end: range.end })
  }
  const log = pino({ level: process.env.ZP_LOG_LEVEL ?? 'warn', base: null }, pino.destination({ fd: 2, sync: true }))
  const label = `campaign ${spec.name}`
  let runners: Runners | undefined
  try {
    // no template to time an exec workload with is a missing flag, not a failing shard
    const execTemplates = await templates(spec.workload, opts.execConfig, label).catch((err: unknown) => {
      throw err instanceof ShardFailure ? new UsageError(err.message) : err
    })
    const capabilities = spec.workload.kind === 'onnx' ? await probe(log, opts.signal) : null
    runners = createRunners({ capabilities: () => capabilities, slots: 1, execTemplates, log })
    const samples: ShardSample[] = []
    for (const [n, index] of indexes.entries()) {
      opts.onShard?.({ index, n: n + 1, of: indexes.length })
      const shard = shardAt(plan, loaded, index)
      const task: Task = {
        key: `dry-run:${index}`,
        campaignId: 'dry-run',
        campaignName: spec.name,
        coordinator: 'local',
        workload: spec.workload,
        params: spec.params,
        lease: { shard, attempt: 1, epoch: 0, timeoutMs: spec.shardTimeoutMs },
        abort: new AbortController()
      }
      const sample = await measure(runners, blobs, task, opts.signal, log)
      samples.push(sample)
      opts.onShard?.({ index, n: n + 1, of: indexes.length, sample })
    }
    return samples
  } finally {
    if (runners != null) await closeRunners(runners)
  }
}

function shardAt (plan: ShardPlan, loaded: LoadedCampaign, index: number): Shard {
  const shard = plan.at(index)
  return shard.kind === 'rows' ? { ...shard, sliceHash: loaded.data!.sliceHashes[index]! } : shard
}

async function measure (runners: Runners, blobs: ShardBlobs, task: Task, signal: AbortSignal, log: Logger): Promise<ShardSample> {
  const shard = task.lease.shard
  const timeoutMs = task.lease.timeoutMs
  const limit = deadline(timeoutMs, signal)
  const cpu = process.cpuUsage()
  const children = await childrenCpuMs()
  const started = performance.now()
  try {
    const files = await shardFiles(blobs, task, limit.signal)
    await runners[task.workload.kind].run(shardTask(task, files), { signal: limit.signal, log, progress: () => {} })
  } catch (err) {
    if (signal.aborted) throw new CalibrationError(`calibration stopped during shard ${shard.index}: ${describeError(signal.reason)}`)
    const why = limit.signal.aborted ? `timed out after ${timeoutMs} ms (the campaign's shardTimeout)` : describeError(err)
    throw new CalibrationError(`calibration shard ${shard.index} failed: ${why}; on the mesh it would fail the same way (fix the workload, then run the dry run again)`)
  } finally {
    limit.clear()
  }
  const wallMs = performance.now() - started
  const used = process.cpuUsage(cpu)
  const cpuMs = (used.user + used.system) / 1000 + (await childrenCpuMs()) - children
  return { index: shard.index, items: shard.end - shard.start, wallMs, cpuMs }
}

/** CPU of the children this process waited for (exec workloads), from /proc on Linux; 0 elsewhere. */
async function childrenCpuMs (): Promise<number> {
  try {
    const stat = await readFile('/proc/self/stat', 'utf8')
    // the fields after the command name in parentheses start at field 3; cutime and cstime are 16 and 17, in 1/100 s
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[13]) + Number(fields[14])) * 10
  } catch {
    return 0
  }
}
