import type { PeerJson } from '../api/routes.ts'
import { ago, displayAddress, loadCells, shortPeerId } from '../cli/format.ts'
import { html, type Html } from './html.ts'

const ORDER = { alive: 0, draining: 1, suspect: 2, dead: 3 }

/** The mesh table (replaced live through server-sent events). */
export function meshTable (peers: PeerJson[], now = Date.now()): Html {
  const sorted = [...peers].sort((a, b) => Number(b.self) - Number(a.self) || ORDER[a.state] - ORDER[b.state] || a.name.localeCompare(b.name))
  const counts = Object.entries(peers.reduce<Record<string, number>>((acc, p) => { acc[p.state] = (acc[p.state] ?? 0) + 1; return acc }, {}))
    .map(([state, n]) => `${n} ${state}`).join(', ')
  return html`<table id="mesh-table">
<caption>${peers.length} peer${peers.length === 1 ? '' : 's'}${counts !== '' ? ` (${counts})` : ''}, as this node sees them</caption>
<thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Peer</th><th scope="col">Address</th><th scope="col">Accelerators</th><th scope="col">Free / total slots</th><th scope="col">CPU</th><th scope="col">Memory</th><th scope="col">GPU</th><th scope="col">Last seen</th></tr></thead>
<tbody>
${sorted.map(p => html`<tr data-peer="${p.name}" data-state="${p.state}">
<th scope="row">${p.name}${p.self ? html` <span class="muted">(this node)</span>` : ''}</th>
<td><span class="state state-${p.state}" title="${p.reason}">${p.state.toUpperCase()}</span></td>
<td><code title="${p.peerId}">${shortPeerId(p.peerId)}</code></td>
<td>${displayAddress(p.multiaddrs)}</td>
<td>${p.capabilities == null ? '(probing…)' : p.accelerators.join(', ') || '-'}</td>
<td class="num">${p.state === 'dead' ? '-' : `${p.slots.free} / ${p.slots.total}`}</td>
${loadCells(p.load).map(cell => html`<td class="load">${cell}</td>`)}
<td>${p.self ? 'now' : ago(p.lastSeenMs, now)}</td>
</tr>`)}
</tbody>
</table>`
}
