import { cpus } from 'node:os'
import type { Logger } from 'pino'
import si from 'systeminformation'
import { describeError } from '../../actors/runtime/errors.ts'
import { MAX_LOAD_GPUS } from '../../protocols/membership/constants.ts'
import type { Load } from '../../protocols/membership/schema.ts'
import { execCommand, type CommandRunner } from './command.ts'
import { gpuLoadTools, type GpuLoadTool } from './gpu-load.ts'
import { withTimeout } from './timeout.ts'

export const DEFAULT_LOAD_INTERVAL_MS = 5000
/** a sample slower than this is skipped (a hung nvidia-smi is killed) */
const MAX_SAMPLE_MS = 4000

/** Cumulative CPU time of all cores since boot, ms. */
export interface CpuTimes {
  busy: number
  total: number
}

/** Sums os.cpus(): one cheap read of /proc/stat (systeminformation's currentLoad spawns a shell and blocks for ~50 ms). */
export function readCpuTimes (): CpuTimes {
  let busy = 0
  let total = 0
  for (const { times } of cpus()) {
    const all = times.user + times.nice + times.sys + times.idle + times.irq
    total += all
    busy += all - times.idle
  }
  return { busy, total }
}

/** The busy fraction of all cores between two readings, 0..1. */
export function cpuBusy (before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total
  if (total <= 0) return 0
  return Math.min(1, Math.max(0, Math.round((after.busy - before.busy) / total * 1000) / 1000))
}

/** Used and total memory in bytes; "used" counts what the kernel could not hand out (total − available, not − free). */
export async function readMemory (): Promise<{ used: number, total: number }> {
  const mem = await si.mem()
  return { used: Math.max(0, mem.total - mem.available), total: mem.total }
}

export interface UtilisationInit {
  /** how often to sample (default 5 s) */
  intervalMs?: number
  /** stops sampling */
  signal: AbortSignal
  log: Logger
  /** tests inject fakes; the defaults read the machine */
  readCpuTimes?: () => CpuTimes
  readMemory?: () => Promise<{ used: number, total: number }>
  run?: CommandRunner
  /** a sample slower than this is skipped (default min(interval, 4 s)) */
  timeoutMs?: number
}

/**
 * Samples CPU, memory and GPU load every few seconds for the heartbeat. One
 * sample at a time: the next is scheduled when the last has ended, and one
 * that fails or is too slow is skipped (the last good one stays).
 */
export class UtilisationSampler {
  readonly #init: UtilisationInit
  readonly #intervalMs: number
  readonly #timeoutMs: number
  readonly #tools: GpuLoadTool[] = gpuLoadTools()
  #cpu: CpuTimes | undefined
  #latest: Load | null = null
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor (init: UtilisationInit) {
    this.#init = init
    this.#intervalMs = init.intervalMs ?? DEFAULT_LOAD_INTERVAL_MS
    this.#timeoutMs = init.timeoutMs ?? Math.min(this.#intervalMs, MAX_SAMPLE_MS)
  }

  /** the last good sample; null before the first */
  get latest (): Load | null {
    return this.#latest
  }

  /** CPU load needs two readings: the first sample comes one second in (sooner with a shorter interval) */
  start (): void {
    if (this.#init.signal.aborted || this.#timer != null) return
    this.#cpu = (this.#init.readCpuTimes ?? readCpuTimes)()
    this.#init.signal.addEventListener('abort', () => { clearTimeout(this.#timer) }, { once: true })
    this.#schedule(Math.min(1000, this.#intervalMs))
  }

  /** One sample now: CPU since the last reading, memory, and each GPU tool in turn. */
  async sample (signal: AbortSignal): Promise<Load> {
    const now = (this.#init.readCpuTimes ?? readCpuTimes)()
    const cpu = this.#cpu != null ? cpuBusy(this.#cpu, now) : 0
    this.#cpu = now
    const mem = await (this.#init.readMemory ?? readMemory)()
    const gpus = []
    for (const tool of this.#tools) {
      try {
        gpus.push(...await tool.read(this.#init.run ?? execCommand, signal))
      } catch (err) {
        if (tool.gone) this.#init.log.info({ tool: tool.file, err: describeError(err) }, `${tool.file} keeps failing: GPU load is no longer sampled with it`)
        throw err
      }
    }
    return { cpu, memUsed: mem.used, memTotal: mem.total, gpus: gpus.slice(0, MAX_LOAD_GPUS) }
  }

  #schedule (delayMs: number): void {
    this.#timer = setTimeout(() => { void this.#tick() }, delayMs)
    // sampling alone never keeps a process alive
    this.#timer.unref?.()
  }

  async #tick (): Promise<void> {
    const { signal, log } = this.#init
    try {
      this.#latest = await withTimeout(async s => await this.sample(s), this.#timeoutMs, signal)
    } catch (err) {
      if (signal.aborted) return
      log.debug({ err: describeError(err) }, 'skipped a load sample')
    }
    if (!signal.aborted) this.#schedule(this.#intervalMs)
  }
}
