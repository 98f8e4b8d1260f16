import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { describeError } from '../actors/runtime/errors.ts'
import type { Labels } from '../protocols/bridge/schema.ts'
import type { CapabilityReport } from '../protocols/membership/capabilities.ts'
import { probeCapabilities, type ProbeOptions } from './probe/index.ts'
import type { Capabilities } from './probe/types.ts'

/** `false` skips probing; a report skips it and is advertised as it is. */
export type ProbeSetting = Omit<ProbeOptions, 'signal' | 'logger'> | false | CapabilityReport

export const DEFAULT_PROBE_INTERVAL_MS = 10 * 60_000

/** The hash covers what was found and the labels, not when: an unchanged re-probe costs peers nothing. */
export function capabilityHash (report: CapabilityReport): string {
  const sorted = Object.entries(report.capabilities).sort(([a], [b]) => a.localeCompare(b))
  const labels = Object.entries(report.labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
  return createHash('sha256').update(JSON.stringify([report.host, sorted, labels])).digest('hex').slice(0, 32)
}

export interface CapabilityProbeInit {
  probe: ProbeSetting | undefined
  intervalMs?: number
  /** capabilities known without probing (the exec templates), added to every report */
  extra: Capabilities
  /** the node's labels (zp-node --label), carried by every report */
  labels?: Labels
  /** hands a new report to membership, which puts it in the heartbeats */
  advertise: (report: CapabilityReport, hash: string) => void
  /** aborted when the node stops: a probe running then is dropped */
  signal: AbortSignal
  log: Logger
}

/** Probes this machine at start and every `intervalMs`, and advertises what it finds. */
export class CapabilityProbe {
  readonly #init: CapabilityProbeInit
  #report: CapabilityReport | null = null
  #timer: ReturnType<typeof setInterval> | undefined

  constructor (init: CapabilityProbeInit) {
    this.#init = init
  }

  /** the last report advertised; null before the first probe ends */
  get report (): CapabilityReport | null {
    return this.#report
  }

  start (): void {
    const { probe, signal, log } = this.#init
    if (probe === false) {
      if (Object.keys(this.#init.labels ?? {}).length > 0) log.warn({ labels: this.#init.labels }, 'probing is off, so this node advertises no capability report and no labels with it: no campaign is matched to it')
      return
    }
    if (probe != null && 'capabilities' in probe) {
      this.#set(probe)
      return
    }
    const run = async (): Promise<void> => {
      try {
        const report = await probeCapabilities({ ...probe, signal, logger: log })
        if (!signal.aborted) this.#set(report)
      } catch (err) {
        if (!signal.aborted) log.error({ err: describeError(err) }, 'capability probe failed')
      }
    }
    void run()
    this.#timer = setInterval(() => { void run() }, this.#init.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS)
    this.#timer.unref()
  }

  stop (): void {
    if (this.#timer != null) clearInterval(this.#timer)
  }

  #set (probed: CapabilityReport): void {
    const labels = { ...probed.labels, ...this.#init.labels }
    const report: CapabilityReport = { ...probed, capabilities: { ...probed.capabilities, ...this.#init.extra }, ...(Object.keys(labels).length > 0 ? { labels } : {}) }
    const first = this.#report == null
    this.#report = report
    this.#init.advertise(report, capabilityHash(report))
    if (first) {
      const ok = Object.entries(report.capabilities).filter(([, c]) => c.status === 'ok').map(([k]) => k)
      this.#init.log.info({ capabilities: ok.length, durationMs: Math.round(report.durationMs), ...(report.labels != null ? { labels: report.labels } : {}) }, 'capabilities probed')
    }
  }
}
