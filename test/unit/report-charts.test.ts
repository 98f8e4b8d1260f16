import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { AuditLog } from '../../actors/coordinator/audit.ts'
import { AuditTrail } from '../../actors/coordinator/audit-trail.ts'
import { barChart, histogram, lineChart, scatterChart } from '../../actors/coordinator/charts.ts'
import { ShardPlan } from '../../actors/coordinator/plan.ts'
import { ReportCollector, throughputFromAudit, type ReportData } from '../../actors/coordinator/report-data.ts'
import { markdownToHtml, MAX_SWEEP_CHARTS, renderSummaryHtml } from '../../actors/coordinator/summary-html.ts'
import { tempDir } from '../helpers.ts'

const HOSTILE = '<script>alert("x")</script>&'

/**
 * Well-formed XML, checked without a parser: every tag closes in order, and
 * no text or attribute holds a raw `<` or a bare `&` (escaping that slipped).
 */
function assertWellFormed (xml: string): void {
  const stack: string[] = []
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!doctype html>|<([^>]*)>?/g)) {
    if (m[0].startsWith('<!doctype')) continue
    if (m[5] !== undefined) throw new Error(`not a tag: ${m[0]}`)
    const [, close, name, attrs, self] = m
    for (const a of (attrs ?? '').matchAll(/="([^"]*)"/g)) expect(a[1]).not.toMatch(/&(?!(amp|lt|gt|quot|#39);)/)
    if (self === '/' || ['meta'].includes(name!)) continue
    if (close === '/') expect(stack.pop(), `closing </${name}>`).toBe(name)
    else stack.push(name!)
  }
  expect(stack).toEqual([])
  const text = xml.replace(/<[^>]*>/g, '')
  expect(text).not.toMatch(/&(?!(amp|lt|gt|quot|#39);)/)
}

function count (text: string, re: RegExp): number {
  return [...text.matchAll(re)].length
}

const TEXT = { id: 'c', title: 'T', desc: 'D', xLabel: 'x', yLabel: 'y' }

describe('chart builders', () => {
  it('draw titled, described, well-formed SVG with one mark per datum', () => {
    const line = lineChart(TEXT, [{ name: 'a', points: [[0, 1], [1, 2], [2, 0.5]] }, { name: 'b', points: [[0, 0], [2, 3]], dashed: true }])
    const hist = histogram(TEXT, [1, 1.5, 2, 2, 2, 9])
    const bars = barChart(TEXT, [{ label: 'n1', value: 3 }, { label: 'n2', value: 5 }])
    const dots = scatterChart(TEXT, [[2, 1], [20, 2], [2000, 3]])
    for (const svg of [line, hist, bars, dots]) {
      assertWellFormed(svg)
      expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"[^>]* role="img" aria-labelledby="c-title c-desc"/)
      expect(svg).toContain('<title id="c-title">T</title>')
      expect(svg).toContain('<desc id="c-desc">D</desc>')
    }
    expect(count(line, /<path d="M/g)).toBe(2)
    expect(count(bars, /<rect x=/g)).toBe(2)
    expect(count(dots, /<circle /g)).toBe(3)
    // 6 values: the bins' heights add up to them
    const heights = [...hist.matchAll(/<title>[^<]*: (\d+)<\/title>/g)].map(m => Number(m[1]))
    expect(heights.reduce((a, b) => a + b, 0)).toBe(6)
    // three decades: a logarithmic axis (ticks at powers of ten)
    expect(dots).toMatch(/>10<[^]*>100<[^]*>1k</)
  })

  it('escape names and labels: a node called <script> is text, not markup', () => {
    const svg = barChart({ ...TEXT, title: HOSTILE }, [{ label: HOSTILE, value: 1 }])
    assertWellFormed(svg)
    expect(svg).not.toContain('<script>')
    expect(svg).toContain('&lt;script&gt;')
  })

  it('place categories evenly for a string parameter', () => {
    const svg = scatterChart(TEXT, [['low', 1], ['high', 2], ['low', 3]])
    assertWellFormed(svg)
    expect(svg).toContain('>low<')
    expect(svg).toContain('>high<')
    expect(count(svg, /<circle /g)).toBe(3)
  })
})

const SUMMARY = [
  '# rlc (c-1)',
  '',
  '**SUCCEEDED**: 2 of 2 shards done, 0 failed, in 1.0 s.',
  '',
  '- Workload: exec template `run {x}`',
  '',
  '## Per node',
  '',
  '| node | shards done |',
  '| --- | ---: |',
  `| ${HOSTILE} | 2 |`,
  '',
  '| shard | last error |',
  '| ---: | --- |',
  '| 1 | a \\| b |',
  ''
].join('\n')

function data (over: Partial<ReportData> = {}): ReportData {
  return {
    startedAt: 1_000_000,
    endedAt: 1_010_000,
    throughput: [{ name: HOSTILE, at: 1_002_000, count: 3 }, { name: 'b', at: 1_008_000, count: 1 }],
    durationsMs: [100, 200, 300],
    durationCount: 3,
    share: [{ name: HOSTILE, done: 3 }, { name: 'b', done: 1 }],
    ...over
  }
}

describe('summary.html', () => {
  it('renders the summary\'s Markdown: headings, lists, tables with their alignment, bold, code', () => {
    const html = markdownToHtml(SUMMARY)
    expect(html).toContain('<h1>rlc (c-1)</h1>')
    expect(html).toContain('<p><strong>SUCCEEDED</strong>: 2 of 2 shards done')
    expect(html).toContain('<li>Workload: exec template <code>run {x}</code></li>')
    expect(html).toContain('<th scope="col" class="num">shards done</th>')
    expect(html).toContain('<td>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;</td><td class="num">2</td>')
    // an escaped pipe stays inside its cell
    expect(html).toContain('<td>a | b</td>')
    expect(count(html, /<table>/g)).toBe(2)
  })

  it('is one well-formed page with the charts, the same bytes for the same input, and no markup from names', () => {
    const page = renderSummaryHtml(`${HOSTILE} (c-1)`, SUMMARY, data())
    expect(renderSummaryHtml(`${HOSTILE} (c-1)`, SUMMARY, data())).toBe(page)
    assertWellFormed(page)
    expect(page).not.toContain('<script')
    expect(page).not.toMatch(/(src|href)=/)
    expect(count(page, /<svg /g)).toBe(3)
    for (const id of ['throughput', 'durations', 'share']) expect(page).toContain(`aria-labelledby="${id}-title ${id}-desc"`)
    // two nodes: a line each and the dashed total
    expect(count(page.slice(page.indexOf('id="throughput-title"'), page.indexOf('id="durations-title"')), /<path d="M/g)).toBe(3)
  })

  it('draws each result column against each grid parameter for a sweep, up to a cap', () => {
    const plan = new ShardPlan({ kind: 'grid', parameters: { r: [1, 10, 100], mode: ['a', 'b'] }, perShard: 2, seed: 0 })
    const collector = new ReportCollector(plan, ['mode', 'r'])
    for (let i = 0; i < plan.count; i++) {
      const shard = plan.at(i)
      if (shard.kind !== 'grid') throw new Error('grid')
      // results name only some parameters: the grid point fills in the rest
      collector.add(i, { rows: shard.points.map(p => ({ gain: Number(p.r) * 2, phase: p.mode === 'a' ? 1 : -1, label: 'x' })), worker: 'w', attempt: 1, durationMs: 10 * (i + 1) })
    }
    const sweep = collector.sweep()!
    expect(sweep.total).toBe(6)
    expect(sweep.rows[5]).toEqual({ mode: 'b', r: 100, gain: 200, phase: -1 })
    const page = renderSummaryHtml('s', '# s', data({ sweep, durationsMs: collector.durationsMs, durationCount: collector.durationCount }))
    assertWellFormed(page)
    // gain and phase, each against mode and r
    expect(count(page, /id="sweep-\d+-title"/g)).toBe(4)
    expect(page).toContain('<title id="sweep-1-title">gain against mode</title>')
    expect(page).toContain('<title id="sweep-2-title">gain against r</title>')

    const wide = Array.from({ length: 10 }, (_, k) => [`c${k}`, k] as const)
    const many = renderSummaryHtml('s', '# s', data({ sweep: { parameters: ['mode', 'r'], rows: [{ mode: 'a', r: 1, ...Object.fromEntries(wide) }], total: 1 } }))
    expect(count(many, /id="sweep-\d+-title"/g)).toBe(MAX_SWEEP_CHARTS)
    expect(many).toContain(`${20 - MAX_SWEEP_CHARTS} more column–parameter pairs are not drawn`)
  })
})

describe('throughput from the audit log', () => {
  let remove: (() => Promise<void>) | undefined
  afterEach(async () => { await remove?.() })

  it('reads each worker\'s results records with their times, named through the membership', async () => {
    const dir = await tempDir()
    remove = dir.remove
    const file = join(dir.path, 'audit.jsonl')
    let now = 5_000
    const trail = new AuditTrail(await AuditLog.open(file), () => now)
    trail.append({ type: 'submitted' })
    trail.result('peer-a', 0, [1])
    trail.result('peer-a', 1, [1])
    trail.result('peer-b', 2, [1])
    trail.flush()
    now = 7_000
    trail.result('peer-a', 3, [1])
    await trail.close()
    const got = await throughputFromAudit(file, new Map([['peer-a', 'alpha']]))
    expect(got).toEqual([{ name: 'alpha', at: 5_000, count: 2 }, { name: 'peer-b', at: 5_000, count: 1 }, { name: 'alpha', at: 7_000, count: 1 }])
    expect(await throughputFromAudit(join(dir.path, 'missing.jsonl'), new Map())).toEqual([])
  })
})
