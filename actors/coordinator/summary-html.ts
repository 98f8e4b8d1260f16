import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { max, min } from 'd3-array'
import { barChart, escapeXml, histogram, lineChart, scatterChart, type Series } from './charts.ts'
import type { ReportData } from './report-data.ts'

/** Lines drawn in the throughput chart: the busiest nodes, the rest summed as one */
const MAX_NODE_LINES = 6
const THROUGHPUT_BUCKETS = 40
/** result column × grid parameter pairs drawn for a sweep */
export const MAX_SWEEP_CHARTS = 12
const MAX_SHARE_BARS = 12

const STYLE = `body{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0}
main{max-width:60rem;margin:0 auto;padding:1rem 1.5rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #999;padding:.25rem .6rem}
th{background:#eee}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f2f2f2;padding:0 .2rem}figure{margin:1rem 0}figcaption{color:#333;font-size:.9rem}
svg{max-width:100%;height:auto}`

/**
 * `summary.html`: the summary's text and tables (rendered from summary.md, so
 * the two never disagree) and SVG charts of the run, in one file that needs
 * nothing else (no script, no external asset). Same input, same bytes.
 */
export function renderSummaryHtml (title: string, markdown: string, data: ReportData): string {
  const figures = charts(data)
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    '<main>',
    markdownToHtml(markdown),
    '<h2>Charts</h2>',
    ...(figures.length > 0 ? figures : ['<p>No shard finished: nothing to chart.</p>']),
    '</main>',
    '</body>',
    '</html>',
    ''
  ].join('\n')
}

export async function writeSummaryHtml (runDir: string, title: string, markdown: string, data: ReportData): Promise<void> {
  await writeFile(join(runDir, 'summary.html'), renderSummaryHtml(title, markdown, data))
}

function figure (svg: string, caption: string): string {
  return `<figure>\n${svg}\n<figcaption>${escapeXml(caption)}</figcaption>\n</figure>`
}

function charts (data: ReportData): string[] {
  const out: string[] = []
  const throughput = throughputSeries(data)
  if (throughput != null) {
    out.push(figure(lineChart({
      id: 'throughput',
      title: 'Throughput over time',
      desc: `Shards finished per second against seconds since the campaign started, in ${throughput.bucketS} s steps, per node${throughput.series.length > 2 ? ' (the busiest nodes; the rest summed)' : ''} and in all.`,
      xLabel: 'seconds since start',
      yLabel: 'shards per second'
    }, throughput.series), 'Throughput per node, from the coordinator\'s audit log (as the results reached it).'))
  }
  if (data.durationsMs.length > 0) {
    const s = data.durationsMs.map(ms => ms / 1000)
    const kept = data.durationCount > data.durationsMs.length ? ` (the first ${data.durationsMs.length} of ${data.durationCount} shards)` : ''
    out.push(figure(histogram({
      id: 'durations',
      title: 'Shard durations',
      desc: `How many shards ran for how long: ${data.durationsMs.length} shards${kept}, from ${fmt(min(s) ?? 0)} s to ${fmt(max(s) ?? 0)} s.`,
      xLabel: 'shard run time (s)',
      yLabel: 'shards'
    }, s), `Distribution of shard run times${kept}.`))
  }
  if (data.share.length > 0) {
    const bars = [...data.share].sort((a, b) => b.done - a.done || a.name.localeCompare(b.name))
    const shown = bars.slice(0, MAX_SHARE_BARS)
    const rest = bars.slice(MAX_SHARE_BARS).reduce((n, b) => n + b.done, 0)
    if (rest > 0) shown.push({ name: `${bars.length - MAX_SHARE_BARS} other nodes`, done: rest })
    out.push(figure(barChart({
      id: 'share',
      title: 'Shards per node',
      desc: `Shards each node finished: ${shown.map(b => `${b.name} ${b.done}`).join(', ')}.`,
      xLabel: 'shards done',
      yLabel: ''
    }, shown.map(b => ({ label: b.name, value: b.done }))), 'Each node\'s share of the finished shards.'))
  }
  out.push(...sweepCharts(data))
  return out
}

/** Per-node (and total) shards per second in equal time buckets over the run. */
function throughputSeries (data: ReportData): { series: Series[], bucketS: number } | undefined {
  if (data.throughput.length === 0) return undefined
  const start = data.startedAt ?? min(data.throughput, t => t.at)!
  const end = Math.max(data.endedAt ?? 0, max(data.throughput, t => t.at)!)
  const bucketS = Math.max(1, Math.ceil((end - start) / 1000 / THROUGHPUT_BUCKETS))
  const buckets = Math.max(1, Math.ceil((end - start) / 1000 / bucketS))
  const totals = new Map<string, number>()
  for (const t of data.throughput) totals.set(t.name, (totals.get(t.name) ?? 0) + t.count)
  const names = [...totals].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([n]) => n)
  const lines = names.length > MAX_NODE_LINES ? [...names.slice(0, MAX_NODE_LINES - 1), `${names.length - MAX_NODE_LINES + 1} other nodes`] : names
  const counts = new Map(lines.map(n => [n, new Array<number>(buckets).fill(0)]))
  const all = new Array<number>(buckets).fill(0)
  for (const t of data.throughput) {
    const b = Math.min(buckets - 1, Math.max(0, Math.floor((t.at - start) / 1000 / bucketS)))
    const line = counts.get(t.name) ?? counts.get(lines.at(-1)!)!
    line[b]! += t.count
    all[b]! += t.count
  }
  // a step a bucket: the rate held over its span, so one bucket is a line too
  const points = (c: number[]): Array<[number, number]> => c.flatMap((n, i) => [[i * bucketS, n / bucketS], [(i + 1) * bucketS, n / bucketS]] as Array<[number, number]>)
  const series: Series[] = lines.map(n => ({ name: n, points: points(counts.get(n)!) }))
  if (lines.length > 1) series.push({ name: 'all nodes', points: points(all), dashed: true })
  return { series, bucketS }
}

/** For a grid campaign: each numeric result column against each grid parameter, up to MAX_SWEEP_CHARTS. */
function sweepCharts (data: ReportData): string[] {
  const sweep = data.sweep
  if (sweep == null || sweep.rows.length === 0) return []
  const columns = [...new Set(sweep.rows.flatMap(r => Object.keys(r)))].filter(c => !sweep.parameters.includes(c))
  const pairs = columns.flatMap(c => sweep.parameters.map(p => [c, p] as const))
  const out: string[] = []
  for (const [column, parameter] of pairs.slice(0, MAX_SWEEP_CHARTS)) {
    const points = sweep.rows.flatMap(r => {
      const x = r[parameter]
      const y = r[column]
      return x != null && typeof y === 'number' && (typeof x !== 'number' || Number.isFinite(x)) ? [[typeof x === 'number' ? x : String(x), y] as const] : []
    })
    if (points.length === 0) continue
    const kept = sweep.total > sweep.rows.length ? ` (the first ${sweep.rows.length} of ${sweep.total} rows)` : ''
    out.push(figure(scatterChart({
      id: `sweep-${out.length + 1}`,
      title: `${column} against ${parameter}`,
      desc: `Result column ${column} for each grid point, against the grid parameter ${parameter}: ${points.length} points${kept}.`,
      xLabel: parameter,
      yLabel: column
    }, points), `Sweep: ${column} against ${parameter}${kept}.`))
  }
  if (pairs.length > MAX_SWEEP_CHARTS) {
    out.push(`<p>${pairs.length - MAX_SWEEP_CHARTS} more column–parameter pairs are not drawn; <code>zp results ID --format csv</code> has every row.</p>`)
  }
  return out
}

function fmt (n: number): string {
  return Number(n.toPrecision(3)).toString()
}

/**
 * The Markdown summary.md is written in, as HTML: headings, bullet lists,
 * pipe tables (with their alignment), paragraphs, **bold** and `code`. All
 * text is escaped first, so a node or campaign name cannot inject markup.
 */
export function markdownToHtml (markdown: string): string {
  const out: string[] = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length;) {
    const l = lines[i]!
    if (l.trim() === '') {
      i++
    } else if (/^#{1,6} /.test(l)) {
      const level = /^#+/.exec(l)![0].length
      out.push(`<h${level}>${inline(l.slice(level + 1))}</h${level}>`)
      i++
    } else if (l.startsWith('- ')) {
      const items: string[] = []
      for (; i < lines.length && lines[i]!.startsWith('- '); i++) items.push(`<li>${inline(lines[i]!.slice(2))}</li>`)
      out.push(`<ul>\n${items.join('\n')}\n</ul>`)
    } else if (l.startsWith('|')) {
      const rows: string[][] = []
      for (; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(cells(lines[i]!))
      out.push(table(rows))
    } else {
      const para: string[] = []
      for (; i < lines.length && lines[i]!.trim() !== '' && !/^(#|- |\|)/.test(lines[i]!); i++) para.push(inline(lines[i]!))
      out.push(`<p>${para.join('\n')}</p>`)
    }
  }
  return out.join('\n')
}

function cells (row: string): string[] {
  return row.trim().replace(/^\|/, '').replace(/(?<!\\)\|$/, '').split(/(?<!\\)\|/).map(c => c.trim().replace(/\\\|/g, '|'))
}

function table (rows: string[][]): string {
  const [head, rule, ...body] = rows
  const numeric = (rule ?? []).map(c => /:$/.test(c))
  const cls = (i: number): string => numeric[i] === true ? ' class="num"' : ''
  return [
    '<table>',
    `<thead><tr>${(head ?? []).map((c, i) => `<th scope="col"${cls(i)}>${inline(c)}</th>`).join('')}</tr></thead>`,
    '<tbody>',
    ...body.map(r => `<tr>${r.map((c, i) => `<td${cls(i)}>${inline(c)}</td>`).join('')}</tr>`),
    '</tbody>',
    '</table>'
  ].join('\n')
}

function inline (text: string): string {
  return escapeXml(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
}
