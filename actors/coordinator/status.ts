import type { Priority } from '../../protocols/campaign/spec.ts'
import { FINAL_STATES, type CampaignRun, type CampaignState, type DeadLetter, type WorkerStats } from './campaign.ts'
import type { CampaignRecord } from './store.ts'

/** `GET /v1/campaigns/{id}` and `zp status --json`. */
export interface CampaignStatus {
  id: string
  name: string
  state: CampaignState
  priority: Priority
  /** the peer whose coordinator runs it */
  coordinator: string
  createdAt: number
  startedAt: number | null
  endedAt: number | null
  shards: { total: number, done: number, failed: number, running: number, leased: number, pending: number }
  /** 0..1, counting running shards' reported progress */
  progress: number
  /** shards per second over the last minute */
  rate: number
  etaMs: number | null
  /** why ready shards are not being leased (QUEUED campaigns say why here) */
  waiting: string | null
  workers: WorkerStats[]
  /** the first dead letters (all of them in summary.md) */
  deadLetters: DeadLetter[]
  runDir: string
  /** how many times a replica has taken the campaign over */
  term?: number
  /** the peers holding replicas of its checkpoints */
  replicas?: string[]
  /** peers that refused its shards or its replicas because they do not trust this coordinator's node */
  refusedBy?: string[]
}

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
    etaMs: run.finished ? null : run.throughput.etaMs(remaining, now) ?? null,
    waiting: run.waiting ?? null,
    workers: run.workers(),
    deadLetters: run.deadLetters().slice(0, SHOWN_DEAD_LETTERS),
    runDir
  }
}

/** A campaign known only from its record (finished, or from before a restart). */
export function recordedStatus (rec: CampaignRecord, coordinator: string): CampaignStatus {
  return {
    id: rec.id,
    name: rec.spec.name,
    state: rec.state,
    priority: rec.spec.priority,
    coordinator,
    createdAt: rec.createdAt,
    startedAt: rec.startedAt ?? null,
    endedAt: rec.endedAt ?? null,
    shards: { total: rec.shards, done: rec.done, failed: rec.deadLetters.length, running: 0, leased: 0, pending: rec.shards - rec.done - rec.deadLetters.length },
    progress: rec.shards === 0 ? 1 : (rec.done + rec.deadLetters.length) / rec.shards,
    rate: 0,
    etaMs: null,
    // a record that never reached a final state belongs to a run this node lost when it restarted
    waiting: FINAL_STATES.has(rec.state) ? null : 'not running: its coordinator\'s node restarted while it ran; finished shards are kept',
    workers: [],
    deadLetters: rec.deadLetters.slice(0, SHOWN_DEAD_LETTERS),
    runDir: rec.runDir
  }
}
