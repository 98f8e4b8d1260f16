import { bin, max, min } from 'd3-array'
import { scaleBand, scaleLinear, scaleLog, scalePoint } from 'd3-scale'
import { line } from 'd3-shape'

/**
 * Self-contained SVG charts for the campaign report, written as strings:
 * pure functions of their input (same data, same bytes), every piece of text
 * escaped, each chart titled and described for screen readers.
 */

const WIDTH = 640
const HEIGHT = 300
const M = { top: 16, right: 16, bottom: 48, left: 76 }
/** Okabe–Ito hues darkened to at least 3:1 against white, for lines and marks */
export const PALETTE = ['#0072B2', '#C44E00', '#007A5E', '#A3487F', '#5E4FA2', '#8A6A00', '#B2182B', '#444444']

export interface ChartText {
  /** unique within the page: the ids of the title and description derive from it */
  id: string
  title: string
  desc: string
  xLabel: string
  yLabel: string
}

export interface Series {
  name: string
  points: ReadonlyArray<readonly [number, number]>
  dashed?: boolean
}

export function escapeXml (text: string): string {
  return text.replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** Coordinates to 0.1 px: enough for the eye, and no float noise in the bytes. */
function r (n: number): number {
  return Math.round(n * 10) / 10
}

function frame (t: ChartText, body: string[]): string {
  const id = escapeXml(t.id)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-labelledby="${id}-title ${id}-desc" font-family="sans-serif" font-size="12">`,
    `<title id="${id}-title">${escapeXml(t.title)}</title>`,
    `<desc id="${id}-desc">${escapeXml(t.desc)}</desc>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    ...body,
    `<text x="${r(M.left + (WIDTH - M.left - M.right) / 2)}" y="${HEIGHT - 8}" text-anchor="middle" fill="#222222">${escapeXml(t.xLabel)}</text>`,
    `<text transform="translate(12 ${r(M.top + (HEIGHT - M.top - M.bottom) / 2)}) rotate(-90)" text-anchor="middle" fill="#222222">${escapeXml(t.yLabel)}</text>`,
    '</svg>'
  ].join('\n')
}

interface Axis { ticks: Array<{ at: number, label: string }> }

/**
 * Numeric axis ticks: d3's nice values, placed through the scale (a log
 * scale's unlabelled minor ticks left out); very small or large values with
 * SI prefixes (100n, 2.2m, 50k), which stay short enough not to collide.
 */
function numericTicks (scale: { ticks: (n?: number) => number[], tickFormat: (n?: number, spec?: string) => (d: number) => string, domain: () => number[], (v: number): number | undefined }, count: number): Axis {
  const extent = Math.max(...scale.domain().map(Math.abs))
  const format = scale.tickFormat(count, extent > 0 && (extent < 0.01 || extent >= 1e5) ? '~s' : undefined)
  return { ticks: scale.ticks(count).map(v => ({ at: scale(v) ?? 0, label: format(v) })).filter(t => t.label !== '') }
}

function xAxis (a: Axis, y: number): string[] {
  return [
    `<line x1="${M.left}" x2="${WIDTH - M.right}" y1="${y}" y2="${y}" stroke="#444444"/>`,
    ...a.ticks.map(t => `<g transform="translate(${r(t.at)} ${y})"><line y2="5" stroke="#444444"/><text y="18" text-anchor="middle" fill="#222222">${escapeXml(t.label)}</text></g>`)
  ]
}

function yAxis (a: Axis): string[] {
  return [
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${HEIGHT - M.bottom}" stroke="#444444"/>`,
    ...a.ticks.map(t => `<g transform="translate(${M.left} ${r(t.at)})"><line x2="-5" stroke="#444444"/><line x2="${WIDTH - M.left - M.right}" stroke="#e3e3e3"/><text x="-8" dy="4" text-anchor="end" fill="#222222">${escapeXml(t.label)}</text></g>`)
  ]
}

function legend (names: ReadonlyArray<{ name: string, dashed?: boolean }>): string[] {
  return names.map((s, i) => {
    const y = M.top + 6 + i * 16
    const dash = s.dashed === true ? ' stroke-dasharray="6 3"' : ''
    return `<g transform="translate(${WIDTH - M.right - 150} ${y})"><line x2="18" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"${dash}/><text x="24" dy="4" fill="#222222">${escapeXml(clip(s.name, 22))}</text></g>`
  })
}

function clip (text: string, n: number): string {
  return text.length > n ? text.slice(0, n - 1) + '…' : text
}

const innerX: [number, number] = [M.left, WIDTH - M.right]
const innerY: [number, number] = [HEIGHT - M.bottom, M.top]

/** Lines over a numeric x, one per series (a legend names them). */
export function lineChart (t: ChartText, series: readonly Series[]): string {
  const all = series.flatMap(s => s.points)
  const x = scaleLinear().domain([min(all, p => p[0]) ?? 0, max(all, p => p[0]) ?? 1]).range(innerX).nice()
  const y = scaleLinear().domain([0, Math.max(max(all, p => p[1]) ?? 1, Number.MIN_VALUE)]).range(innerY).nice()
  const path = line<readonly [number, number]>().x(p => x(p[0])).y(p => y(p[1])).digits(1)
  return frame(t, [
    ...yAxis(numericTicks(y, 5)),
    ...xAxis(numericTicks(x, 8), HEIGHT - M.bottom),
    ...series.map((s, i) => `<path d="${path(s.points) ?? ''}" fill="none" stroke="${PALETTE[i % PALETTE.length]}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 3"' : ''}><title>${escapeXml(s.name)}</title></path>`),
    ...legend(series)
  ])
}

/** Counts of `values` in about `bins` equal-width bins over nice bounds. */
export function histogram (t: ChartText, values: readonly number[], bins = 20): string {
  const lo = min(values) ?? 0
  const hi = max(values) ?? 1
  const x = scaleLinear().domain([lo, hi > lo ? hi : lo + 1]).range(innerX).nice(bins)
  const groups = bin().domain(x.domain() as [number, number]).thresholds(x.ticks(bins))(values)
  const y = scaleLinear().domain([0, max(groups, g => g.length) ?? 1]).range(innerY).nice()
  return frame(t, [
    ...yAxis(numericTicks(y, 5)),
    ...groups.filter(g => g.length > 0).map(g => {
      const x0 = x(g.x0!)
      const w = Math.max(1, x(g.x1!) - x0 - 1)
      return `<rect x="${r(x0)}" y="${r(y(g.length))}" width="${r(w)}" height="${r(y(0) - y(g.length))}" fill="${PALETTE[0]}"><title>${escapeXml(`${g.x0}–${g.x1}: ${g.length}`)}</title></rect>`
    }),
    ...xAxis(numericTicks(x, 8), HEIGHT - M.bottom)
  ])
}

/** Horizontal bars, one per label, in the order given. */
export function barChart (t: ChartText, bars: ReadonlyArray<{ label: string, value: number }>): string {
  const left = 140
  const y = scaleBand().domain(bars.map((_, i) => String(i))).range([M.top, HEIGHT - M.bottom]).padding(0.2)
  const x = scaleLinear().domain([0, max(bars, b => b.value) ?? 1]).range([left, WIDTH - M.right]).nice()
  const ticks = numericTicks(x, 6)
  return frame(t, [
    `<line x1="${left}" x2="${left}" y1="${M.top}" y2="${HEIGHT - M.bottom}" stroke="#444444"/>`,
    ...bars.map((b, i) => {
      const top = y(String(i)) ?? 0
      return `<g><rect x="${left}" y="${r(top)}" width="${r(x(b.value) - left)}" height="${r(y.bandwidth())}" fill="${PALETTE[0]}"><title>${escapeXml(`${b.label}: ${b.value}`)}</title></rect>` +
        `<text x="${left - 6}" y="${r(top + y.bandwidth() / 2 + 4)}" text-anchor="end" fill="#222222">${escapeXml(clip(b.label, 20))}</text></g>`
    }),
    ...xAxis(ticks, HEIGHT - M.bottom)
  ])
}

/**
 * Dots of y against x: a numeric x on a linear scale (logarithmic when it is
 * positive and spans two decades or more, as sweep grids often do), a
 * string or boolean x as evenly spaced categories.
 */
export function scatterChart (t: ChartText, points: ReadonlyArray<readonly [number | string, number]>): string {
  const numeric = points.every(p => typeof p[0] === 'number')
  const ys = points.map(p => p[1])
  const y = scaleLinear().domain([min(ys) ?? 0, max(ys) ?? 1]).range(innerY).nice()
  let place: (v: number | string) => number
  let axis: Axis
  if (numeric) {
    const xs = points.map(p => p[0] as number)
    const lo = min(xs) ?? 0
    const hi = max(xs) ?? 1
    // inset, so that dots at the ends are not cut by the axis
    const range: [number, number] = [innerX[0] + 8, innerX[1] - 8]
    const scale = lo > 0 && hi / lo >= 100 ? scaleLog().domain([lo, hi]).range(range) : scaleLinear().domain([lo, hi === lo ? lo + 1 : hi]).range(range).nice()
    place = v => scale(v as number)
    axis = numericTicks(scale, 8)
  } else {
    const scale = scalePoint().domain([...new Set(points.map(p => String(p[0])))]).range(innerX).padding(0.5)
    place = v => scale(String(v)) ?? 0
    axis = { ticks: scale.domain().map(d => ({ at: scale(d) ?? 0, label: clip(d, 12) })) }
  }
  return frame(t, [
    ...yAxis(numericTicks(y, 5)),
    ...xAxis(axis, HEIGHT - M.bottom),
    `<g fill="${PALETTE[0]}" fill-opacity="0.7">`,
    ...points.map(p => `<circle cx="${r(place(p[0]))}" cy="${r(y(p[1]))}" r="3"/>`),
    '</g>'
  ])
}
