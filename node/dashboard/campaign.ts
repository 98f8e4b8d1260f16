import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { duration, FINAL } from '../cli/campaigns.ts'
import { ago, shortPeerId } from '../cli/format.ts'
import { html, type Html } from './html.ts'
import { percent } from './layout.ts'

function named (peer: string, name: string | undefined): Html {
  return html`${name ?? ''} <code title="${peer}">${shortPeerId(peer)}</code>`
}

function progressBar (s: CampaignStatus): Html {
  return html`<progress max="1" value="${s.progress.toFixed(4)}" aria-label="progress of ${s.name}">${percent(s.progress)}</progress> <span class="progress-text" data-progress="${s.progress}">${percent(s.progress)}</span>`
}

function rateText (s: CampaignStatus): string {
  return FINAL.has(s.state) ? '-' : `${s.rate.toFixed(2)} shards/s`
}

/** The campaigns list (replaced live). */
export function campaignsTable (list: CampaignStatus[], now = Date.now()): Html {
  if (list.length === 0) return html`<p id="campaigns-table">No campaigns on this node or its peers yet: <code>zp submit campaign.yaml</code> starts one.</p>`
  const sorted = [...list].sort((a, b) => b.createdAt - a.createdAt)
  return html`<table id="campaigns-table">
<caption>${list.length} campaign${list.length === 1 ? '' : 's'}, newest first</caption>
<thead><tr><th scope="col">Name</th><th scope="col">ID</th><th scope="col">State</th><th scope="col">Progress</th><th scope="col">Shards done</th><th scope="col">Failed</th><th scope="col">Rate</th><th scope="col">ETA</th><th scope="col">Created</th></tr></thead>
<tbody>
${sorted.map(s => html`<tr data-campaign="${s.id}" data-state="${s.state}">
<th scope="row"><a href="/ui/campaigns/${encodeURIComponent(s.id)}">${s.name}</a></th>
<td><code>${s.id}</code></td>
<td><span class="state cstate-${s.state.toLowerCase()}">${s.state}</span></td>
<td>${progressBar(s)}</td>
<td class="num">${s.shards.done} / ${s.shards.total}</td>
<td class="num">${s.shards.failed}</td>
<td class="num">${rateText(s)}</td>
<td class="num">${duration(s.etaMs)}</td>
<td>${ago(s.createdAt, now)}</td>
</tr>`)}
</tbody>
</table>`
}

/** Each worker's accelerators as the mesh page shows them ('cpu' for none): what throughput is grouped by. */
export type AcceleratorsOf = ReadonlyMap<string, string>

function acceleratorOf (peer: string, of: AcceleratorsOf): string {
  return of.get(peer) ?? 'unknown (not in the mesh now)'
}

/** Shards done and run time per accelerator kind, summed over the workers that have it. */
export function byAccelerator (s: CampaignStatus, of: AcceleratorsOf): Array<{ accelerators: string, workers: number, done: number, busyMs: number }> {
  const groups = new Map<string, { accelerators: string, workers: number, done: number, busyMs: number }>()
  for (const w of s.workers) {
    const key = acceleratorOf(w.peer, of)
    const g = groups.get(key) ?? { accelerators: key, workers: 0, done: 0, busyMs: 0 }
    g.workers++
    g.done += w.done
    g.busyMs += w.busyMs
    groups.set(key, g)
  }
  return [...groups.values()].sort((a, b) => b.done - a.done || a.accelerators.localeCompare(b.accelerators))
}

/** The sample the throughput chart adds per update: time, shards done in all, per worker and per accelerator kind. */
export function chartSample (s: CampaignStatus, now: number, of: AcceleratorsOf = new Map()): string {
  return JSON.stringify({
    t: now / 1000,
    done: s.shards.done,
    workers: Object.fromEntries(s.workers.map(w => [w.name !== '' ? w.name : shortPeerId(w.peer), w.done])),
    accelerators: Object.fromEntries(byAccelerator(s, of).map(g => [g.accelerators, g.done]))
  })
}

function bucketLabel (i: number, bounds: number[]): string {
  return i < bounds.length ? `≤ ${duration(bounds[i]!)}` : `> ${duration(bounds.at(-1)!)}`
}

/** The shard duration histogram as a table with a bar per bucket (from the first non-empty bucket to the last). */
function durationsTable (s: CampaignStatus): Html {
  const d = s.durations
  const first = d?.counts.findIndex(n => n > 0) ?? -1
  if (d == null || first < 0) return html`<p id="durations">No shard durations yet.</p>`
  const last = d.counts.length - 1 - [...d.counts].reverse().findIndex(n => n > 0)
  const max = Math.max(...d.counts)
  const rows = d.counts.slice(first, last + 1).map((n, k) => ({ label: bucketLabel(first + k, d.boundsMs), n }))
  return html`<table id="durations">
<caption>Shard durations</caption>
<thead><tr><th scope="col">Took</th><th scope="col">Shards</th><th scope="col">Share of the largest bucket</th></tr></thead>
<tbody>${rows.map(r => html`<tr><th scope="row">${r.label}</th><td class="num">${r.n}</td><td><meter class="bar" min="0" max="${max}" value="${r.n}" aria-label="${r.n} shards ${r.label}">${r.n}</meter></td></tr>`)}</tbody>
</table>`
}

function acceleratorsTable (s: CampaignStatus, of: AcceleratorsOf): Html {
  const groups = byAccelerator(s, of)
  if (groups.length === 0) return html``
  return html`<table id="accelerators">
<caption>By accelerator</caption>
<thead><tr><th scope="col">Accelerators</th><th scope="col">Workers</th><th scope="col">Done</th><th scope="col">Busy</th><th scope="col">Per shard</th></tr></thead>
<tbody>${groups.map(g => html`<tr><th scope="row">${g.accelerators}</th><td class="num">${g.workers}</td><td class="num">${g.done}</td><td class="num">${duration(g.busyMs)}</td><td class="num">${g.done > 0 ? duration(g.busyMs / g.done) : '-'}</td></tr>`)}</tbody>
</table>`
}

/** The live part of a campaign's page: state, progress, counts, workers, dead letters. */
export function campaignLive (s: CampaignStatus, now = Date.now(), of: AcceleratorsOf = new Map()): Html {
  const replicas = s.replicas ?? []
  const counts: Array<[string, number]> = [['done', s.shards.done], ['failed', s.shards.failed], ['running', s.shards.running], ['leased', s.shards.leased], ['pending', s.shards.pending]]
  return html`<div id="campaign-live" data-state="${s.state}" data-sample="${chartSample(s, now, of)}">
<dl class="facts">
<dt>State</dt><dd><span class="state cstate-${s.state.toLowerCase()}">${s.state}</span>${s.stale === true ? ' (possibly behind)' : ''}${s.waiting != null ? html` <span class="waiting">${s.waiting}</span>` : ''}</dd>
<dt>Progress</dt><dd>${progressBar(s)}</dd>
<dt>Rate</dt><dd>${rateText(s)}, ETA ${duration(s.etaMs)}</dd>
<dt>Coordinator</dt><dd>${named(s.coordinator, s.coordinatorName)}${(s.term ?? 0) > 0 ? `, term ${s.term} (a replica took it over)` : ''}</dd>
<dt>Replicas</dt><dd>${replicas.length > 0 ? replicas.map((p, i) => html`${i > 0 ? ', ' : ''}${named(p, s.replicaNames?.[i])}`) : 'none'}</dd>
<dt>Priority</dt><dd>${s.priority}</dd>
<dt>Took</dt><dd>${s.startedAt != null ? duration((s.endedAt ?? now) - s.startedAt) : '-'}</dd>
</dl>
<table id="shard-counts">
<caption>Shards (${s.shards.total} in all)</caption>
<thead><tr>${counts.map(([k]) => html`<th scope="col">${k}</th>`)}</tr></thead>
<tbody><tr>${counts.map(([k, n]) => html`<td class="num" data-count="${k}">${n}</td>`)}</tr></tbody>
</table>
<table id="workers">
<caption>Workers</caption>
<thead><tr><th scope="col">Worker</th><th scope="col">Done</th><th scope="col">Failed</th><th scope="col">Busy</th></tr></thead>
<tbody>${s.workers.length === 0
  ? html`<tr><td colspan="4">none yet</td></tr>`
  : s.workers.map(w => html`<tr><th scope="row">${named(w.peer, w.name)}</th><td class="num">${w.done}</td><td class="num">${w.failed}</td><td class="num">${duration(w.busyMs)}</td></tr>`)}</tbody>
</table>
${acceleratorsTable(s, of)}
${durationsTable(s)}
${s.deadLetters.length > 0
  ? html`<table id="dead-letters">
<caption>Dead letters (${s.shards.failed}${s.shards.failed > s.deadLetters.length ? `; the first ${s.deadLetters.length} here, all in the summary` : ''})</caption>
<thead><tr><th scope="col">Shard</th><th scope="col">Attempts</th><th scope="col">Error</th></tr></thead>
<tbody>${s.deadLetters.map(d => html`<tr><th scope="row">${d.index}</th><td class="num">${d.attempts}</td><td><pre>${d.error}</pre></td></tr>`)}</tbody>
</table>`
  : html`<p id="dead-letters">No dead letters.</p>`}
</div>`
}

/** A campaign's page: the live part, the chart, downloads and actions. */
export function campaignBody (s: CampaignStatus, now = Date.now(), of: AcceleratorsOf = new Map()): Html {
  const id = encodeURIComponent(s.id)
  return html`<p class="muted">Campaign <code>${s.id}</code>, created ${ago(s.createdAt, now)}; run dir <code>${s.runDir}</code></p>
<div hx-ext="sse" sse-connect="/ui/events/campaigns/${id}">
<div sse-swap="campaign" aria-live="off">${campaignLive(s, now, of)}</div>
</div>
<section aria-labelledby="chart-title">
<h2 id="chart-title">Throughput over time (shards/s, per worker and per accelerator)</h2>
<div id="throughput-chart" class="chart" role="img" aria-label="throughput over time per worker and per accelerator kind, from when this page opened"></div>
</section>
<section aria-labelledby="actions-title">
<h2 id="actions-title">Results and actions</h2>
<ul class="actions">
<li><a href="/ui/campaigns/${id}/results?format=csv&amp;partial=true" download>Results (CSV)</a></li>
<li><a href="/ui/campaigns/${id}/results?format=jsonl&amp;partial=true" download>Results (JSON lines)</a></li>
<li><a href="/ui/campaigns/${id}/summary">Summary</a></li>
</ul>
<p>
<button type="button" hx-get="/ui/campaigns/${id}/audit" hx-target="#action-result">Check the audit trail</button>
<button type="button" hx-post="/ui/campaigns/${id}/cancel" hx-target="#action-result" hx-confirm="Cancel campaign ${s.name}? Finished shards are kept; the rest are not run.">Cancel campaign</button>
<button type="button" hx-post="/ui/campaigns/${id}/resume" hx-target="#action-result" hx-confirm="Resume campaign ${s.name}?">Resume campaign</button>
</p>
<div id="action-result" role="status" aria-live="polite"></div>
</section>`
}
