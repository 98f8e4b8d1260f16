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

const GIB = 1024 ** 3
const percent = (busy: number | null): string => busy == null ? '?' : `${Math.round(busy * 100)}%`
const gib = (bytes: number | null): string => bytes == null ? '?' : (bytes / GIB).toFixed(1)

/** The CPU, MEM and GPU cells of `zp peers --wide`: `37%`, `12.3/62.8 GiB`, one `0: 85% 10.2/79.6 GiB` line per GPU. */
export function loadCells (load: PeerJson['load'] | undefined): [string, string, string] {
  if (load == null) return ['-', '-', '-']
  const gpus = load.gpus.map((g, i) => `${i}: ${percent(g.util)} ${gib(g.memUsed)}/${gib(g.memTotal)} GiB`).join('\n')
  return [percent(load.cpu), `${gib(load.memUsed)}/${gib(load.memTotal)} GiB`, gpus || '-']
}

/** `wide` adds the hardware load each peer last reported (`zp peers --wide`). */
export function renderPeerTable (peers: PeerJson[], now = Date.now(), { wide = false } = {}): string {
  // the LABELS column only when some peer has labels (bridged nodes): a plain mesh keeps its narrow table
  const labelled = peers.some(p => Object.keys(p.labels ?? {}).length > 0)
  const table = new Table({
    head: ['PEER', 'NAME', 'STATE', 'ADDRESS', 'ACCELERATORS', ...(labelled ? ['LABELS'] : []), 'FREE SLOTS', ...(wide ? ['CPU', 'MEM', 'GPU'] : []), 'LAST SEEN'],
    style: { head: [], border: [], compact: true },
    wordWrap: true,
    colWidths: [null, null, null, null, 44, ...(labelled ? [32] : []), null, ...(wide ? [null, null, null] : []), null] as unknown as number[]
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
      // a dead peer's last load is history, not its state
      ...(wide ? loadCells(p.state === 'dead' ? null : p.load) : []),
      p.self ? 'this node' : ago(p.lastSeenMs, now)
    ])
  }
  const counts = Object.entries(peers.reduce<Record<string, number>>((acc, p) => { acc[p.state] = (acc[p.state] ?? 0) + 1; return acc }, {}))
    .map(([state, n]) => `${n} ${state}`).join(', ')
  return `${table.toString()}\n${peers.length} peers (${counts}); * = this node`
}
