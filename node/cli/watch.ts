import { isFinal } from '../../actors/coordinator/states.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { delay } from '../../protocols/common/signals.ts'
import type { ApiClient } from '../api/client.ts'
import { duration } from './campaigns.ts'
import { shortPeerId } from './format.ts'

const POLL_MS = 1000
const REQUEST_TIMEOUT_MS = 5000
/** how long the node may stay unreachable before the watch gives up */
const UNREACHABLE_MS = 30_000
const BAR = 30
const STATES = ['done', 'running', 'leased', 'pending', 'failed'] as const

/** Where the view goes: a terminal gets a redrawn block, anything else plain lines. */
export interface WatchOut {
  write: (text: string) => unknown
  isTTY?: boolean
  columns?: number
}

function bar (n: number, total: number): string {
  const filled = total > 0 ? Math.round(Math.min(1, Math.max(0, n / total)) * BAR) : 0
  return '█'.repeat(filled) + '░'.repeat(BAR - filled)
}

function peer (id: string, name: string | undefined): string {
  return name != null && name !== id ? name : shortPeerId(id)
}

/** The live block: a bar per shard state, rate and ETA, workers, coordinator and term. */
export function renderWatch (s: CampaignStatus): string[] {
  const sh = s.shards
  const counts: Record<(typeof STATES)[number], number> = { done: sh.done, running: sh.running, leased: sh.leased, pending: Math.max(0, sh.pending), failed: sh.failed }
  const workers = [...s.workers].sort((a, b) => b.done - a.done || a.name.localeCompare(b.name))
  return [
    `${s.name} (${s.id})  ${s.state}${s.stale === true ? ' (possibly behind)' : ''}  ${(s.progress * 100).toFixed(1)}%`,
    ...STATES.map(k => `  ${k.padEnd(8)} ${bar(counts[k], sh.total)} ${String(counts[k]).padStart(String(sh.total).length)}/${sh.total}`),
    `  rate     ${s.rate.toFixed(1)} shards/s   ETA ${isFinal(s.state) ? '-' : duration(s.etaMs)}   took ${s.startedAt != null ? duration((s.endedAt ?? Date.now()) - s.startedAt) : '-'}`,
    `  workers  ${workers.length === 0 ? 'none yet' : workers.slice(0, 6).map(w => `${w.name} ${w.done}${w.failed > 0 ? ` (${w.failed} failed)` : ''}`).join(', ') + (workers.length > 6 ? `, ${workers.length - 6} more` : '')}`,
    `  coord    ${peer(s.coordinator, s.coordinatorName)}, term ${s.term ?? 0}, replicas ${(s.replicas ?? []).map((p, i) => peer(p, s.replicaNames?.[i])).join(', ') || 'none'}`,
    ...s.waiting != null ? [`  waiting  ${s.waiting}`] : []
  ]
}

/** One line for a log: the time, the state and the counts. */
export function watchLine (s: CampaignStatus, now: number): string {
  const sh = s.shards
  return `${new Date(now).toISOString()} ${s.id} ${s.state} ${(s.progress * 100).toFixed(1)}% ` +
    `done ${sh.done}/${sh.total} running ${sh.running} leased ${sh.leased} pending ${Math.max(0, sh.pending)} failed ${sh.failed} | ` +
    `${s.rate.toFixed(1)} shards/s | ETA ${isFinal(s.state) ? '-' : duration(s.etaMs)} | ${s.workers.length} workers` +
    (s.waiting != null ? ` | waiting: ${s.waiting}` : '')
}

/**
 * `zp status ID --watch`: polls the campaign every second until it ends (or
 * `signal` aborts) and returns its last status. On a terminal the block is
 * redrawn in place, then cleared for the final status; elsewhere a line is
 * written whenever the counts change.
 */
export async function watch (api: ApiClient, id: string, opts: { out: WatchOut, signal: AbortSignal }): Promise<CampaignStatus> {
  const { out, signal } = opts
  const tty = out.isTTY === true
  let drawn = 0
  let lastLine = ''
  let failingSince: number | undefined
  const clear = (): void => {
    if (drawn > 0) out.write(`\x1b[${drawn}F\x1b[0J`)
    drawn = 0
  }
  if (tty) out.write('\x1b[?25l')
  try {
    for (;;) {
      let status: CampaignStatus
      try {
        status = await api.get<CampaignStatus>(`/v1/campaigns/${id}`, { timeoutMs: REQUEST_TIMEOUT_MS, signal })
        failingSince = undefined
      } catch (err) {
        // a node that restarts or is busy for a moment is waited for; a 404 or a long outage is not
        signal.throwIfAborted()
        failingSince ??= Date.now()
        if ((err as { status?: number }).status != null || Date.now() - failingSince > UNREACHABLE_MS) throw err
        await delay(POLL_MS, signal)
        continue
      }
      if (tty) {
        // a terminal that does not say its width (0) is taken as 80 wide
        const width = Math.max(20, (out.columns != null && out.columns > 0 ? out.columns : 80) - 1)
        const lines = renderWatch(status).map(l => l.length > width ? l.slice(0, width - 1) + '…' : l)
        clear()
        out.write(lines.join('\n') + '\n')
        drawn = lines.length
      } else {
        const text = watchLine(status, Date.now())
        // the time in front changes every poll: compare what follows it
        const counts = text.slice(text.indexOf(' '))
        if (counts !== lastLine || isFinal(status.state)) out.write(text + '\n')
        lastLine = counts
      }
      if (isFinal(status.state)) {
        clear()
        return status
      }
      await delay(POLL_MS, signal)
    }
  } finally {
    if (tty) out.write('\x1b[?25h')
  }
}
