import Table from 'cli-table3'
import type { PeerJson } from '../api/routes.ts'

export function shortPeerId (id: string): string {
  return id.length > 16 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id
}

/** `ip:port` of the first TCP address, preferring one other machines can reach. */
export function displayAddress (multiaddrs: string[]): string {
  const parsed = multiaddrs.flatMap(a => {
    const m = /^\/(ip4|ip6|dns4?|dns6)\/([^/]+)\/tcp\/(\d+)/.exec(a)
    return m == null ? [] : [{ host: m[2]!, port: m[3]!, v6: m[1] === 'ip6' }]
  })
  const best = parsed.find(p => p.host !== '127.0.0.1' && p.host !== '::1') ?? parsed[0]
  if (best == null) return '-'
  return best.v6 ? `[${best.host}]:${best.port}` : `${best.host}:${best.port}`
}

export function ago (epochMs: number, now = Date.now()): string {
  const s = Math.max(0, now - epochMs) / 1000
  if (s < 60) return `${s.toFixed(1)} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  return `${(s / 3600).toFixed(1)} h ago`
}

/** `bridge=slurm, slurm.job=42`, keys sorted; '-' when none */
export function formatLabels (labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b))
  return entries.length > 0 ? entries.map(([k, v]) => `${k}=${v}`).join(', ') : '-'
}

export function renderPeerTable (peers: PeerJson[], now = Date.now()): string {
  // the LABELS column only when some peer has labels (bridged nodes): a plain mesh keeps its narrow table
  const labelled = peers.some(p => Object.keys(p.labels ?? {}).length > 0)
  const table = new Table({
    head: ['PEER', 'NAME', 'STATE', 'ADDRESS', 'ACCELERATORS', ...(labelled ? ['LABELS'] : []), 'FREE SLOTS', 'LAST SEEN'],
    style: { head: [], border: [], compact: true },
    wordWrap: true,
    colWidths: [null, null, null, null, 44, ...(labelled ? [32] : []), null, null] as unknown as number[]
  })
  const order = { alive: 0, draining: 1, suspect: 2, dead: 3 }
  const sorted = [...peers].sort((a, b) => Number(b.self) - Number(a.self) || order[a.state] - order[b.state] || a.name.localeCompare(b.name))
  for (const p of sorted) {
    table.push([
      shortPeerId(p.peerId) + (p.self ? ' *' : ''),
      p.name,
      p.state.toUpperCase(),
      displayAddress(p.multiaddrs),
      p.capabilities == null ? '(probing…)' : p.accelerators.join(', ') || '-',
      ...(labelled ? [formatLabels(p.labels)] : []),
      p.state === 'dead' ? '-' : `${p.slots.free}/${p.slots.total}`,
      p.self ? 'this node' : ago(p.lastSeenMs, now)
    ])
  }
  const counts = Object.entries(peers.reduce<Record<string, number>>((acc, p) => { acc[p.state] = (acc[p.state] ?? 0) + 1; return acc }, {}))
    .map(([state, n]) => `${n} ${state}`).join(', ')
  return `${table.toString()}\n${peers.length} peers (${counts}); * = this node`
}
