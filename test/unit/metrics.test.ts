import { execFile, execFileSync } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { ActorHost } from '../../actors/runtime/host.ts'
import { silentLogger } from '../../node/logger.ts'
import { MetricsAddressError, parseMetricsAddress } from '../../node/metrics/listener.ts'
import { NodeMetrics, type ScrapeSources } from '../../node/metrics/metrics.ts'
import { tempDir } from '../helpers.ts'

const run = promisify(execFile)
const DEPLOY = join(import.meta.dirname, '..', '..', 'deploy', 'prometheus')

function hasPromtool (): boolean {
  try {
    execFileSync('promtool', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
const PROMTOOL = hasPromtool()
const SKIP = 'skipped: promtool is not installed (apt-get install prometheus: Debian bookworm ships 2.42)'

const sources = (over: Partial<ScrapeSources> = {}): ScrapeSources => ({
  peers: async () => [{ state: 'alive' }, { state: 'alive' }, { state: 'suspect' }],
  blobStore: () => ({ blobs: 3, bytes: 4096 }),
  mailboxes: () => [{ name: 'worker', depth: 2 }],
  campaigns: async () => [{ id: 'c1', shards: { done: 5, failed: 0, running: 1, leased: 0, pending: 4 }, replicas: [{ peer: 'p2', behind: 3 }] }],
  load: () => ({ cpu: 0.25, memUsed: 2 ** 30, memTotal: 4 * 2 ** 30, gpus: [{ util: 0.5, memUsed: 1e9, memTotal: 8e9 }, { util: null, memUsed: null, memTotal: null }] }),
  ...over
})

/** The sample value of one series in the exposition text, or undefined. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  return line == null ? undefined : Number(line.slice(series.length + 1))
}

/** Every metric name the exposition defines (histograms with their _bucket/_sum/_count series). */
function exposedNames (text: string): Set<string> {
  const names = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!)
    if (m[2] === 'histogram' || m[2] === 'summary') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1]! + s)
  }
  return names
}

describe('node metrics', () => {
  it('exposes the gauges read on scrape, with the states and labels a dashboard expects', async () => {
    const m = new NodeMetrics()
    m.setSources(sources())
    const text = await m.text()
    expect(sample(text, 'zp_peers{state="alive"}')).toBe(2)
    expect(sample(text, 'zp_peers{state="suspect"}')).toBe(1)
    expect(sample(text, 'zp_peers{state="dead"}')).toBe(0)
    expect(sample(text, 'zp_shards{campaign="c1",state="done"}')).toBe(5)
    expect(sample(text, 'zp_shards{campaign="c1",state="pending"}')).toBe(4)
    expect(sample(text, 'zp_replication_lag{campaign="c1",replica="p2"}')).toBe(3)
    expect(sample(text, 'zp_actor_mailbox_depth{actor="worker"}')).toBe(2)
    expect(sample(text, 'zp_blob_store_bytes')).toBe(4096)
    // the machine's load, as sampled for heartbeats; a GPU whose tool says N/A has no series
    expect(sample(text, 'zp_node_cpu_utilisation')).toBe(0.25)
    expect(sample(text, 'zp_node_memory_used_bytes')).toBe(2 ** 30)
    expect(sample(text, 'zp_gpu_utilisation{gpu="0"}')).toBe(0.5)
    expect(sample(text, 'zp_gpu_memory_total_bytes{gpu="0"}')).toBe(8e9)
    expect(sample(text, 'zp_gpu_utilisation{gpu="1"}')).toBeUndefined()
    expect(text).toMatch(/^process_cpu_user_seconds_total /m)
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m)
  })

  it('counts what the ports hear: shards, results, leases, blob fetches, heartbeats and errors by code', async () => {
    const m = new NodeMetrics()
    m.worker.shardEnded({ campaign: 'c1', kind: 'module', outcome: 'ok', seconds: 0.2, resultRows: 100 })
    m.worker.shardEnded({ campaign: 'c1', kind: 'module', outcome: 'failed', seconds: 3, timedOut: true })
    m.coordinator.leases('c1', 'granted', 64)
    m.coordinator.leases('c1', 'requeued', 2)
    m.blobs.fetched(0.5, 1000)
    m.blobs.fetched(0.1, undefined)
    m.heartbeat('sent')
    m.heartbeat('received')
    m.heartbeat('received')
    const text = await m.text()
    expect(sample(text, 'zp_shards_completed_total{campaign="c1",kind="module",outcome="ok"}')).toBe(1)
    expect(sample(text, 'zp_shard_duration_seconds_count{kind="module",outcome="failed"}')).toBe(1)
    expect(sample(text, 'zp_result_rows_total{kind="module"}')).toBe(100)
    expect(sample(text, 'zp_leases_total{campaign="c1",event="granted"}')).toBe(64)
    expect(sample(text, 'zp_leases_total{campaign="c1",event="requeued"}')).toBe(2)
    expect(sample(text, 'zp_blob_fetched_bytes_total')).toBe(1000)
    expect(sample(text, 'zp_blob_fetch_duration_seconds_count{outcome="error"}')).toBe(1)
    expect(sample(text, 'zp_heartbeats_total{direction="received"}')).toBe(2)
    expect(sample(text, 'zp_errors_total{code="shard_timeout"}')).toBe(1)
  })

  it('times asks per target actor and counts failed ones by their actor status', async () => {
    const m = new NodeMetrics()
    const host = new ActorHost({ self: 'peer-self', logger: silentLogger(), trust: { isTrusted: () => false }, metrics: m.host })
    const echo = host.spawn<number>('echo', { create: () => ({ receive: (n) => n }) })
    await echo.ask(1)
    await echo.ask(2)
    await expect(host.ask({ peer: 'peer-self', name: 'nobody' }, 1)).rejects.toThrow(/no actor named/)
    m.setSources(sources({ mailboxes: () => host.mailboxes() }))
    const text = await m.text()
    expect(sample(text, 'zp_ask_duration_seconds_count{actor="echo",outcome="ok"}')).toBe(2)
    expect(sample(text, 'zp_ask_duration_seconds_count{actor="nobody",outcome="error"}')).toBe(1)
    expect(sample(text, 'zp_errors_total{code="no_such_actor"}')).toBe(1)
    expect(sample(text, 'zp_actor_mailbox_depth{actor="echo"}')).toBe(0)
    await host.stop()
  })

  it('keeps scraping when a source fails: its gauges are left out, the rest are there', async () => {
    const m = new NodeMetrics()
    m.setSources(sources({ campaigns: async () => { throw new Error('coordinator busy') } }))
    const text = await m.text()
    expect(sample(text, 'zp_peers{state="alive"}')).toBe(2)
    expect(text).not.toMatch(/^zp_shards\{/m)
  })

  it('gives each node its own registry (several nodes in one process)', async () => {
    const a = new NodeMetrics()
    const b = new NodeMetrics()
    a.heartbeat('sent')
    expect(sample(await a.text(), 'zp_heartbeats_total{direction="sent"}')).toBe(1)
    expect(sample(await b.text(), 'zp_heartbeats_total{direction="sent"}')).toBeUndefined()
  })

  it('lints clean with promtool check metrics (exit 0, or 3 for lint warnings only)', async (ctx) => {
    if (!PROMTOOL) return ctx.skip(SKIP)
    const m = new NodeMetrics()
    m.setSources(sources())
    m.worker.shardEnded({ campaign: 'c1', kind: 'exec', outcome: 'ok', seconds: 1, resultRows: 10 })
    const dir = await tempDir()
    try {
      await writeFile(join(dir.path, 'm.txt'), await m.text())
      const rc = await run('sh', ['-c', `promtool check metrics < ${join(dir.path, 'm.txt')}`]).then(() => 0, (err: { code: number, stdout: string }) => {
        if (err.code !== 3) throw new Error(`promtool check metrics failed (exit ${err.code}): ${err.stdout}`)
        return 3
      })
      expect([0, 3]).toContain(rc)
    } finally {
      await dir.remove()
    }
  })
})

describe('--metrics address', () => {
  it('takes HOST:PORT on any host (loopback or the overlay) and port 0', () => {
    expect(parseMetricsAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseMetricsAddress('10.70.0.2:9464')).toEqual({ host: '10.70.0.2', port: 9464 })
    expect(parseMetricsAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 })
  })

  it('refuses what is not HOST:PORT, saying what it expects', () => {
    expect(() => parseMetricsAddress('9464')).toThrow(MetricsAddressError)
    expect(() => parseMetricsAddress('host:99999')).toThrow(/expected HOST:PORT/)
  })
})

describe('deploy/prometheus', () => {
  it('the Grafana dashboard queries only metrics the node exposes (it cannot drift from the code)', async () => {
    const dashboard = JSON.parse(await readFile(join(DEPLOY, 'grafana.json'), 'utf8')) as {
      panels: Array<{ title: string, targets: Array<{ expr: string }> }>
      templating: { list: Array<{ query?: unknown }> }
    }
    const m = new NodeMetrics()
    m.setSources(sources())
    const exposed = exposedNames(await m.text())
    const queries = [
      ...dashboard.panels.flatMap(p => p.targets.map(t => ({ where: p.title, expr: t.expr }))),
      ...dashboard.templating.list.flatMap(v => typeof v.query === 'string' && v.query.includes('(') ? [{ where: 'templating', expr: v.query }] : [])
    ]
    expect(queries.length).toBeGreaterThan(10)
    const unknown: string[] = []
    for (const q of queries) {
      for (const [name] of q.expr.matchAll(/\b(?:zp|process|nodejs)_[a-z0-9_]+\b/g)) {
        if (!exposed.has(name)) unknown.push(`${name} (panel '${q.where}')`)
      }
    }
    expect(unknown).toEqual([])
    // every zp_ metric has a panel
    const used = queries.map(q => q.expr).join('\n')
    const zp = [...exposed].filter(n => n.startsWith('zp_') && !/_(bucket|sum|count)$/.test(n))
    expect(zp.filter(n => !used.includes(n) && !used.includes(`${n}_bucket`))).toEqual([])
  })

  it('prometheus.yml passes promtool check config', async (ctx) => {
    if (!PROMTOOL) return ctx.skip(SKIP)
    // --syntax-only: the bearer-token variant names a token file that only exists on a node's machine
    const { stdout } = await run('promtool', ['check', 'config', '--syntax-only', join(DEPLOY, 'prometheus.yml')])
    expect(stdout).toMatch(/SUCCESS/)
  })
})
