import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { html, type Html } from './html.ts'

/** One line of the node's JSON log, as pino writes it. */
interface LogLine {
  time?: string
  level?: number
  msg?: string
  [key: string]: unknown
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' }
const SHOWN_FIELDS_MAX = 300

function logRow (line: string): Html {
  let entry: LogLine
  try {
    entry = JSON.parse(line) as LogLine
  } catch {
    return html`<tr><td></td><td></td><td><code>${line}</code></td></tr>`
  }
  const { time, level, msg, ...rest } = entry
  const fields = JSON.stringify(rest)
  const name = LEVELS[level ?? 30] ?? String(level)
  return html`<tr class="log-${name}"><td><time>${time ?? ''}</time></td><td>${name}</td><td>${msg ?? ''}${fields !== '{}' ? html` <code class="muted">${fields.length > SHOWN_FIELDS_MAX ? fields.slice(0, SHOWN_FIELDS_MAX) + '…' : fields}</code>` : ''}</td></tr>`
}

/** The node's own page: identity, what its probe found, the tail of its log. */
export function nodeBody (info: Record<string, unknown>, log: { file: string, lines: string[] | null }): Html {
  const report = info.capabilities as CapabilityReport | null | undefined
  const slots = info.slots as { free?: number, total?: number } | undefined
  const facts: Array<[string, unknown]> = [['Name', info.name], ['Peer ID', info.peerId], ['State', info.state], ['Version', info.version],
    ['Slots', slots != null ? `${slots.free} free of ${slots.total}` : '-'], ['Data dir', info.dataDir], ['Addresses', (info.multiaddrs as string[] | undefined)?.join(' ')]]
  return html`<dl class="facts">${facts.map(([k, v]) => html`<dt>${k}</dt><dd>${v == null ? '-' : String(v)}</dd>`)}</dl>
<section aria-labelledby="probe-title">
<h2 id="probe-title">Probe report</h2>
${report == null
  ? html`<p>The probe has not finished yet.</p>`
  : html`<p>${report.host.cpuModel}, ${report.host.cores} cores, ${(report.host.memoryBytes / 2 ** 30).toFixed(1)} GiB memory (${report.host.platform}/${report.host.arch}); probed in ${report.durationMs} ms.</p>
<table id="capabilities">
<caption>${Object.keys(report.capabilities).length} capabilities</caption>
<thead><tr><th scope="col">Capability</th><th scope="col">Status</th><th scope="col">Details</th></tr></thead>
<tbody>${Object.entries(report.capabilities).sort(([a], [b]) => a.localeCompare(b)).map(([key, c]) => html`<tr><th scope="row"><code>${key}</code></th><td>${c.status}</td><td>${
  c.status === 'ok' ? (c.info != null ? html`<code>${JSON.stringify(c.info)}</code>` : '') : c.status === 'unavailable' ? c.reason : c.message}</td></tr>`)}</tbody>
</table>`}
</section>
<section aria-labelledby="log-title">
<h2 id="log-title">Log (last lines of <code>${log.file}</code>)</h2>
${log.lines == null
  ? html`<p>No log file at <code>${log.file}</code> (the node may log elsewhere: <code>zp-node start --log-file</code>).</p>`
  : html`<table id="log-tail"><thead><tr><th scope="col">Time</th><th scope="col">Level</th><th scope="col">Message</th></tr></thead><tbody>${log.lines.map(logRow)}</tbody></table>`}
</section>`
}
