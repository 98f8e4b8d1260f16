import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LocalNode } from '../../bootstrap/local.ts'
import { resolveApiTarget } from '../../node/api/client.ts'
import { freePort, stopProcess, tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, runCli, waitForStates, type ProcessMesh } from './harness.ts'

// The real Prometheus from Debian scraping two real nodes' --metrics listeners while a campaign runs.
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
const SKIP = 'skipped: prometheus/promtool are not installed (apt-get install prometheus: Debian bookworm ships 2.42)'

function installed (): boolean {
  try {
    execFileSync('prometheus', ['--version'], { stdio: 'ignore' })
    execFileSync('promtool', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const PROMETHEUS = installed()

interface PromVector { status: string, data: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }
let nodes: LocalNode[]
let prometheus: ChildProcess | undefined
let promUrl = ''
let promLog = ''

async function query (promql: string): Promise<PromVector['data']['result']> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`, { signal: AbortSignal.timeout(5000) })
  const body = await res.json() as PromVector
  if (body.status !== 'success') throw new Error(`prometheus query '${promql}' failed: ${JSON.stringify(body)}`)
  return body.data.result
}

beforeAll(async () => {
  if (!PROMETHEUS) return
  scratch = await tempDir('zp-proc-metrics-')
  mesh = await createProcessMesh()
  const a = await mesh.start('a', { args: ['--slots', '2', '--metrics', '127.0.0.1:0'] })
  const b = await mesh.start('b', { via: a, args: ['--slots', '2', '--metrics', '127.0.0.1:0'] })
  nodes = [a, b]
  await waitForStates(mesh, a, ['a', 'b'], 'alive')
  // started before the campaign: its first scrape comes a few seconds after it starts (target discovery batches)
  const targets = nodes.map(n => new URL(n.info!.metrics!).host)
  const port = await freePort()
  promUrl = `http://127.0.0.1:${port}`
  await writeFile(join(scratch.path, 'prometheus.yml'), JSON.stringify({
    global: { scrape_interval: '1s', evaluation_interval: '1s' },
    scrape_configs: [{ job_name: 'zp', static_configs: [{ targets }] }]
  }))
  prometheus = spawn('prometheus', [
    `--config.file=${join(scratch.path, 'prometheus.yml')}`, `--storage.tsdb.path=${join(scratch.path, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  prometheus.stdout!.on('data', (d: Buffer) => { promLog += d.toString() })
  prometheus.stderr!.on('data', (d: Buffer) => { promLog += d.toString() })
}, 90_000)

afterAll(async () => {
  await stopProcess(prometheus)
  await mesh?.stop()
  await scratch?.remove()
}, 60_000)

describe('Prometheus metrics of real nodes', () => {
  it('GET /metrics needs the API token; the --metrics listener serves the same text without it, and promtool accepts it', async (ctx) => {
    if (!PROMETHEUS) return ctx.skip(SKIP)
    const { url, token } = await resolveApiTarget({ dataDir: nodes[0]!.dataDir })
    const denied = await fetch(`${url}/metrics`)
    expect(denied.status).toBe(401)
    const api = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
    expect(api.status).toBe(200)
    expect(api.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(await api.text()).toMatch(/^zp_peers\{state="alive"\} 2$/m)
    const open = await fetch(nodes[0]!.info!.metrics!)
    expect(open.status).toBe(200)
    const body = await open.text()
    expect(body).toMatch(/^# TYPE zp_shard_duration_seconds histogram$/m)
    expect(body).toMatch(/^process_resident_memory_bytes \d+/m)
    expect((await fetch(nodes[0]!.info!.metrics!.replace(/\/metrics$/, '/v1/peers'))).status).toBe(404)
    await writeFile(join(scratch.path, 'metrics.txt'), body)
    // exit 1: the exposition does not parse; 3: lint warnings only (prom-client's nodejs_active_*_total gauges)
    const rc = await new Promise<{ code: number | null, out: string }>(resolve => {
      const p = spawn('sh', ['-c', `promtool check metrics < '${join(scratch.path, 'metrics.txt')}'`])
      let out = ''
      p.stdout.on('data', (d: Buffer) => { out += d.toString() })
      p.stderr.on('data', (d: Buffer) => { out += d.toString() })
      p.once('exit', code => { resolve({ code, out }) })
    })
    expect([0, 3], `promtool check metrics: ${rc.out}`).toContain(rc.code)
  })

  it('Prometheus scrapes both nodes and sees the shards-done rate rise while a campaign runs', async (ctx) => {
    if (!PROMETHEUS) return ctx.skip(SKIP)
    await waitFor(async () => {
      const up = await query('up{job="zp"} == 1').catch(() => [])
      return up.length === 2 ? up : undefined
    }, { timeoutMs: 30_000, what: `Prometheus to scrape both nodes (its log: ${promLog})` })
    const alive = await query('zp_peers{state="alive"}')
    expect(alive.map(s => s.value[1])).toEqual(['2', '2'])
    // slow shards (2 items × 200 ms): the campaign outlasts the scrapes the rate needs; cancelled once seen
    const file = join(scratch.path, 'slow.yaml')
    await writeFile(file, JSON.stringify({ name: 'slow', workload: { kind: 'module', module: SQUARES }, params: { slowMs: 200 }, shards: { iterations: { total: 800, perShard: 2, seed: 1 } } }))
    const submitted = await runCli('zp', ['submit', file, '--data-dir', nodes[0]!.dataDir])
    expect(submitted.code, submitted.stderr).toBe(0)
    const id = submitted.stdout.trim()
    try {
      const rate = await waitFor(async () => {
        const r = await query('sum(rate(zp_shards_completed_total{outcome="ok"}[15s])) > 0')
        return r.length === 1 ? r : undefined
      }, { timeoutMs: 30_000, what: 'a positive shards-done rate in Prometheus' })
      expect(Number(rate[0]!.value[1])).toBeGreaterThan(0)
      // the coordinator's gauges and the worker histogram, per campaign and kind
      const running = await waitFor(async () => {
        const r = await query(`zp_shards{campaign="${id}", state="done"} > 0`)
        return r.length === 1 ? r : undefined
      }, { timeoutMs: 15_000, what: 'the coordinator\'s done-shards gauge' })
      expect(running[0]!.metric.instance).toBe(new URL(nodes[0]!.info!.metrics!).host)
      const p95 = await query('histogram_quantile(0.95, sum by (kind, le) (rate(zp_shard_duration_seconds_bucket[15s])))')
      expect(p95.map(s => s.metric.kind)).toEqual(['module'])
      expect((await query('sum(zp_leases_total{event="granted"})'))[0]?.value[1]).toMatch(/^[1-9]/)
      // the replica on the other node, asks from the workers to the coordinator, heartbeats both ways on each node
      expect((await query(`zp_replication_lag{campaign="${id}"}`)).map(s => s.metric.replica)).toEqual([nodes[1]!.info!.peerId])
      expect((await query('sum by (instance) (zp_ask_duration_seconds_count{actor="coordinator"})')).length).toBe(2)
      expect((await query('sum by (instance) (zp_heartbeats_total{direction="received"}) > 0')).length).toBe(2)
    } finally {
      await runCli('zp', ['cancel', id, '--data-dir', nodes[0]!.dataDir])
    }
  }, 90_000)
})
