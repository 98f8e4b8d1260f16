import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import { tempDir } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }
let node: LocalNode

beforeAll(async () => {
  scratch = await tempDir('zp-proc-report-')
  mesh = await createProcessMesh()
  node = await mesh.start('solo', { args: ['--slots', '1'] })
})
afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
})

function count (text: string, re: RegExp): number {
  return [...text.matchAll(re)].length
}

describe('zp status --watch and zp report on a sweep', () => {
  it('watches a running sweep to its end, then saves its report with charts that agree with zp status', async () => {
    // 6 × 2 grid points, one a shard, each 0.7 s on one slot: it runs for over 8 s
    const file = join(scratch.path, 'sweep.yaml')
    await writeFile(file, JSON.stringify({
      name: 'square-sweep',
      workload: { kind: 'module', module: SQUARES },
      shards: { grid: { parameters: { x: [1, 2, 3, 4, 5, 6], mode: ['low', 'high'] }, perShard: 1 } },
      params: { slowMs: 700 }
    }))
    const submitted = await runCli('zp', ['submit', file, '--data-dir', node.dataDir])
    expect(submitted.code).toBe(0)
    const id = submitted.stdout.trim()

    // not a terminal: a plain line whenever the counts change, the final status as JSON, exit 0
    const watching = runCli('zp', ['status', id, '--watch', '--json', '--data-dir', node.dataDir], { timeoutMs: 60_000 })
    // while it runs: the report is refused, naming what to do
    const early = await runCli('zp', ['report', id, '--data-dir', node.dataDir])
    expect(early.code).toBe(2)
    expect(early.stderr).toMatch(new RegExp(`campaign ${id} is (QUEUED|RUNNING): its report is written when it ends; follow it with 'zp status ${id} --watch'`))
    const watched = await watching
    expect(watched.code).toBe(0)
    const final = JSON.parse(watched.stdout) as CampaignStatus
    expect(final).toMatchObject({ state: 'SUCCEEDED', shards: { total: 12, done: 12, failed: 0 } })
    const lines = watched.stderr.trim().split('\n')
    expect(watched.stderr).not.toContain('\x1b[')
    for (const l of lines) expect(l).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z ${id} (QUEUED|RUNNING|SUCCEEDED) [\\d.]+% done \\d+/12 running \\d+ leased \\d+ pending \\d+ failed 0 \\| [\\d.]+ shards/s \\| ETA .+ \\| \\d+ workers`))
    expect(lines.some(l => / RUNNING /.test(l)), watched.stderr).toBe(true)
    expect(lines.at(-1)).toMatch(/ SUCCEEDED 100\.0% done 12\/12 /)

    const out = join(scratch.path, 'report.html')
    const saved = await runCli('zp', ['report', id, '--out', out, '--data-dir', node.dataDir])
    expect(saved.code, saved.stderr).toBe(0)
    expect(saved.stdout).toBe(`${out}\n`)
    const html = await readFile(out, 'utf8')
    expect(html).toMatch(/^<!doctype html>\n<html lang="en">/)
    // self-contained: no script, nothing fetched
    expect(html).not.toMatch(/<script|(src|href)=/)
    expect(html).toContain(`<h1>square-sweep (${id})</h1>`)
    expect(html).toContain('<p><strong>SUCCEEDED</strong>: 12 of 12 shards done, 0 failed')
    // the numbers zp status gives: each worker's shards, in the table and in the share chart
    for (const w of final.workers) {
      expect(html).toContain(`<tr><td>${w.name}</td><td class="num">${w.done}</td><td class="num">${w.failed}</td>`)
      expect(html).toContain(`<title>${w.name}: ${w.done}</title>`)
    }
    expect(html).toContain('<desc id="durations-desc">How many shards ran for how long: 12 shards,')
    // any node gives the same page: one that joins after the end asks the coordinator for it
    const other = await mesh.start('other', { via: node })
    const copy = join(scratch.path, 'copy.html')
    const fetched = await runCli('zp', ['report', id, '--out', copy, '--data-dir', other.dataDir])
    expect(fetched.code, fetched.stderr).toBe(0)
    expect(await readFile(copy, 'utf8')).toBe(html)
    // throughput, durations, shards per node, and the three result columns against the two grid parameters
    expect(count(html, /<svg /g)).toBe(3 + 3 * 2)
    for (const t of ['Throughput over time', 'Shard durations', 'Shards per node', 'square against x', 'square against mode', 'draw against x']) {
      expect(html).toMatch(new RegExp(`<title id="[\\w-]+-title">${t}</title>`))
    }
    // a dot per grid point in each sweep chart
    const squareX = html.slice(html.indexOf('>square against x<'), html.indexOf('</svg>', html.indexOf('>square against x<')))
    expect(count(squareX, /<circle /g)).toBe(12)
    expect(html).toMatch(/<desc id="throughput-desc">Shards finished per second against seconds since the campaign started, in \d+ s steps/)
  })
})
