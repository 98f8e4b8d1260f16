import { summarize } from './stats.ts'
import type { Figure } from './suite.ts'

export interface ClosedLoopOptions {
  /** requests kept in flight: each worker sends its next one when the last is answered */
  concurrency: number
  durationMs: number
  signal: AbortSignal
  /** CPU time (µs) used so far by every process involved; read before and after the window */
  cpu?: () => Promise<number>
}

/** One measured window: the latency of every op that started and ended inside it. */
export interface LoadWindow {
  latencies: number[]
  durationMs: number
  cpuMicros?: number
}

/**
 * Runs `op` back to back from `concurrency` workers for a fixed time. The
 * first failure stops every worker and is thrown.
 */
export async function closedLoop (op: () => Promise<void>, opts: ClosedLoopOptions): Promise<LoadWindow> {
  const cpuBefore = await opts.cpu?.()
  const until = performance.now() + opts.durationMs
  const latencies: number[] = []
  const failed = new AbortController()
  const signal = AbortSignal.any([opts.signal, failed.signal])

  const worker = async (): Promise<void> => {
    for (;;) {
      signal.throwIfAborted()
      const t0 = performance.now()
      if (t0 >= until) return
      try {
        await op()
      } catch (err) {
        failed.abort(err)
        throw err
      }
      const t1 = performance.now()
      if (t1 < until) latencies.push(t1 - t0)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  const cpuMicros = cpuBefore != null ? await opts.cpu!() - cpuBefore : undefined
  return { latencies, durationMs: opts.durationMs, cpuMicros }
}

export interface LoadFigures {
  /** the median of the windows' rates (a burst of other load on the box spoils few windows); samples: each window's rate */
  throughput: Figure
  /** ms per op over all windows; value: the median */
  latency: Figure
  /** CPU µs per op, all windows together; samples: each window's */
  cpu?: Figure
}

export function loadFigures (windows: LoadWindow[]): LoadFigures {
  const rates = windows.map(w => w.latencies.length / (w.durationMs / 1000))
  const stats = summarize(windows.flatMap(w => w.latencies))
  const figures: LoadFigures = {
    throughput: { value: summarize(rates).p50, unit: 'ops/s', samples: rates.map(r => Math.round(r)) },
    latency: { value: stats.p50, unit: 'ms', stats }
  }
  if (windows.every(w => w.cpuMicros != null)) {
    const ops = windows.reduce((n, w) => n + w.latencies.length, 0)
    const micros = windows.reduce((n, w) => n + w.cpuMicros!, 0)
    figures.cpu = { value: micros / ops, unit: 'µs', samples: windows.map(w => Math.round(w.cpuMicros! / w.latencies.length * 10) / 10) }
  }
  return figures
}
