import { DEFAULT_TIMINGS, type LivenessTimings } from '../../actors/membership/liveness.ts'
import { UsageError } from './errors.ts'

type Flags = Partial<Pick<LivenessTimings, 'heartbeatMs' | 'suspectAfterMs' | 'deadAfterMs'>>

/**
 * Refuses liveness timings that cannot work: a peer silent for one heartbeat
 * interval is normal, so SUSPECT must wait longer than that, and DEAD longer
 * than SUSPECT. Values not given are the defaults, and are named as such.
 */
export function checkLivenessFlags (flags: Flags): void {
  const value = (key: keyof Flags, flag: string): string =>
    flags[key] != null ? `${flag} ${flags[key]}` : `${flag} (default ${DEFAULT_TIMINGS[key]})`
  const t = { ...DEFAULT_TIMINGS, ...flags }
  if (t.suspectAfterMs <= t.heartbeatMs) {
    throw new UsageError(`${value('suspectAfterMs', '--suspect-after-ms')} must be above ${value('heartbeatMs', '--heartbeat-ms')}: ` +
      `every peer would turn SUSPECT between two heartbeats; set --suspect-after-ms to a few heartbeats (e.g. ${4 * t.heartbeatMs}) or lower --heartbeat-ms`)
  }
  if (t.deadAfterMs <= t.suspectAfterMs) {
    throw new UsageError(`${value('deadAfterMs', '--dead-after-ms')} must be above ${value('suspectAfterMs', '--suspect-after-ms')}: ` +
      `peers would go DEAD without first being SUSPECT; set --dead-after-ms higher (e.g. ${2 * t.suspectAfterMs}) or lower --suspect-after-ms`)
  }
}
