import type { CampaignStatus } from '../../protocols/campaign/status.ts'
import type { CampaignRun } from './campaign.ts'
import { isFinal } from './states.ts'
import type { CampaignRecord } from './store.ts'

export type { CampaignStatus } from '../../protocols/campaign/status.ts'

const SHOWN_DEAD_LETTERS = 20

export function liveStatus (run: CampaignRun, now: number, coordinator: string, runDir: string): CampaignStatus {
  let running = 0
  let leased = 0
  for (const l of run.leases()) {
    if (l.startedAt != null) running++
    else leased++
  }
  const done = run.doneCount
  const failed = run.deadCount
  const remaining = run.total - done - failed
  return {
    id: run.id,
    name: run.spec.name,
    state: run.state,
    priority: run.spec.priority,
    coordinator,
    createdAt: run.createdAt,
    startedAt: run.startedAt ?? null,
    endedAt: run.endedAt ?? null,
    shards: { total: run.total, done, failed, running, leased, pending: run.finished ? 0 : remaining - running - leased },
    progress: run.progressFraction(),
    rate: run.throughput.rate(now),
    etaMs: run.finished || run.state === 'STOPPED' ? null : run.throughput.etaMs(remaining, now) ?? null,
    waiting: run.state === 'STOPPED' ? stoppedWaiting(run.id) : run.waiting ?? null,
    workers: run.workers(),
    durations: run.durations.snapshot(),
    deadLetters: run.deadLetters().slice(0, SHOWN_DEAD_LETTERS),
    runDir
  }
}

/** A campaign known only from its record (finished, stopped, or a copy). */
export function recordedStatus (rec: CampaignRecord, coordinator: string): CampaignStatus {
  const failed = rec.deadLetters.length
  return {
    id: rec.id,
    name: rec.spec.name,
    state: rec.state,
    priority: rec.spec.priority,
    coordinator,
    createdAt: rec.createdAt,
    startedAt: rec.startedAt ?? null,
    endedAt: rec.endedAt ?? null,
    shards: { total: rec.shards, done: rec.done, failed, running: 0, leased: 0, pending: isFinal(rec.state) ? 0 : rec.shards - rec.done - failed },
    progress: rec.shards === 0 ? 1 : (rec.done + failed) / rec.shards,
    rate: 0,
    etaMs: null,
    waiting: rec.state === 'STOPPED'
      ? stoppedWaiting(rec.id)
      : isFinal(rec.state) ? null : 'not running here: its coordinator\'s node restarted while it ran; finished shards are kept',
    workers: rec.workers ?? [],
    ...(rec.durations != null ? { durations: rec.durations } : {}),
    deadLetters: rec.deadLetters.slice(0, SHOWN_DEAD_LETTERS),
    runDir: rec.runDir,
    term: rec.term,
    replicas: rec.replicas
  }
}

function stoppedWaiting (id: string): string {
  return `stopped: its coordinator's node was started with --no-resume; finished shards are kept; 'zp resume ${id}' runs the rest`
}
