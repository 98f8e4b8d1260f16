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

/** The sample the throughput chart adds per update: time, shards done in all and per worker. */
export function chartSample (s: CampaignStatus, now: number): string {
  return JSON.stringify({ t: now / 1000, done: s.shards.done, workers: Object.fromEntries(s.workers.map(w => [w.name !== '' ? w.name : shortPeerId(w.peer), w.done])) })
}

/** The live part of a campaign's page: state, progress, counts, workers, dead letters. */
export function campaignLive (s: CampaignStatus, now = Date.now()): Html {
  const replicas = s.replicas ?? []
  const counts: Array<[string, number]> = [['done', s.shards.done], ['failed', s.shards.failed], ['running', s.shards.running], ['leased', s.shards.leased], ['pending', s.shards.pending]]
  return html`<div id="campaign-live" data-state="${s.state}" data-sample="${chartSample(s, now)}">
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
export function campaignBody (s: CampaignStatus, now = Date.now()): Html {
  const id = encodeURIComponent(s.id)
  return html`<p class="muted">Campaign <code>${s.id}</code>, created ${ago(s.createdAt, now)}; run dir <code>${s.runDir}</code></p>
<div hx-ext="sse" sse-connect="/ui/events/campaigns/${id}">
<div sse-swap="campaign" aria-live="off">${campaignLive(s, now)}</div>
</div>
<section aria-labelledby="chart-title">
<h2 id="chart-title">Throughput over time (shards/s, per worker)</h2>
<div id="throughput-chart" class="chart" role="img" aria-label="throughput over time per worker, from when this page opened"></div>
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
