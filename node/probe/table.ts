import type { Capability, CapabilityReport } from '../../protocols/membership/capabilities.ts'

const DETAIL_WIDTH = 160

const clipTo = (text: string, width: number): string => text.length <= width ? text : `${text.slice(0, width - 1)}…`

/** Device lists read best as "2× NVIDIA H100"; the JSON report keeps every field. */
function describeDevices (devices: unknown[]): string {
  const counts = new Map<string, number>()
  for (const d of devices) {
    const fields = d !== null && typeof d === 'object' ? d as Record<string, unknown> : {}
    const label = [fields.model, fields.name, fields.series, fields.card].find((v) => typeof v === 'string' && v !== '') as string | undefined
    const name = label ?? JSON.stringify(d)
    counts.set(name, (counts.get(name) ?? 0) + 1)
  }
  return [...counts].map(([name, n]) => `${n}× ${name}`).join(', ')
}

function describeInfo (info: Record<string, unknown>): string {
  return Object.entries(info).flatMap(([key, value]) => {
    if (value === null || value === undefined) return []
    if (Array.isArray(value)) return [`${key}=${describeDevices(value)}`]
    if (typeof value === 'object') return [`${key}=${JSON.stringify(value)}`]
    return [`${key}=${String(value)}`]
  }).join(' ')
}

function detail (capability: Capability): string {
  if (capability.status === 'ok') return capability.info === undefined ? '' : describeInfo(capability.info)
  return capability.status === 'unavailable' ? capability.reason : capability.message
}

function gib (bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`
}

/** Lines for `zp-node probe`: a host line, then one aligned row per capability (key, status, detail). */
export function formatProbeTable (report: CapabilityReport): string[] {
  const { host } = report
  const cores = host.physicalCores > 0 ? `${host.cores} logical / ${host.physicalCores} physical cores` : `${host.cores} cores`
  const vendor = host.cpuVendor !== '' ? ` (${host.cpuVendor})` : ''
  const lines = [
    `host ${host.hostname}: ${host.platform}/${host.arch}, ${host.cpuModel}${vendor}, ${cores}, ${gib(host.memoryBytes)}; probed in ${Math.round(report.durationMs)} ms`,
    ''
  ]
  const rows = Object.entries(report.capabilities).map(([key, c]) => [key, c.status, clipTo(detail(c).replace(/\s+/g, ' '), DETAIL_WIDTH)] as const)
  const keyWidth = Math.max(3, ...rows.map(([key]) => key.length))
  const statusWidth = 'unavailable'.length
  lines.push(`${'KEY'.padEnd(keyWidth)}  ${'STATUS'.padEnd(statusWidth)}  DETAIL`)
  for (const [key, status, text] of rows) lines.push(`${key.padEnd(keyWidth)}  ${status.padEnd(statusWidth)}  ${text}`.trimEnd())
  return lines
}
