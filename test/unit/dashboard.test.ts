import { afterEach, describe, expect, it, vi } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import type { CampaignApi } from '../../node/campaign/routes.ts'
import { Dashboard, SESSION_COOKIE } from '../../node/dashboard/app.ts'
import { DurationHistogram } from '../../actors/coordinator/durations.ts'
import { byAccelerator, campaignLive, campaignsTable } from '../../node/dashboard/campaign.ts'
import { html } from '../../node/dashboard/html.ts'
import { meshTable } from '../../node/dashboard/mesh.ts'
import { DashboardLogins, TICKET_TTL_MS } from '../../node/dashboard/sessions.ts'
import { silentLogger } from '../../node/logger.ts'

const HOSTILE = '<img src=x onerror="alert(1)">&\''

function peer (over: Partial<PeerJson> = {}): PeerJson {
  return {
    peerId: '12D3KooWAbcdefghijklmnopqrstuvwxyz', name: 'lab-1', state: 'alive', reason: 'heartbeat', self: false, connected: true,
    multiaddrs: ['/ip4/10.0.0.2/tcp/4001'], capabilities: null, accelerators: [], labels: {}, slots: { total: 4, free: 3 }, load: null,
    lastSeenMs: 1_000_000, stateSince: 0, incarnation: 1, ...over
  }
}

function campaign (over: Partial<CampaignStatus> = {}): CampaignStatus {
  return {
    id: 'c-abc', name: 'squares', state: 'RUNNING', priority: 'NORMAL', coordinator: '12D3KooWcoord', createdAt: 0, startedAt: 0, endedAt: null,
    shards: { total: 10, done: 4, failed: 1, running: 2, leased: 0, pending: 3 }, progress: 0.45, rate: 1.5, etaMs: 4000, waiting: null,
    workers: [{ peer: '12D3KooWworker', name: 'lab-2', done: 4, failed: 1, busyMs: 1200 }],
    deadLetters: [{ index: 7, attempts: 3, error: `shard 7: ${HOSTILE}` }], runDir: '/tmp/run', ...over
  }
}

afterEach(() => { vi.useRealTimers() })

describe('dashboard rendering', () => {
  it('escapes what other machines send: peer names, reasons, errors', () => {
    const table = meshTable([peer({ name: HOSTILE, reason: HOSTILE })], 1_002_000).text
    expect(table).not.toContain('<img')
    expect(table).toContain('&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;')
    const live = campaignLive(campaign({ name: HOSTILE }), 5000).text
    expect(live).not.toContain('<img')
    expect(live).toContain('shard 7: &lt;img')
    expect(campaignsTable([campaign({ name: HOSTILE })], 5000).text).not.toContain('<img')
  })

  it('shows a peer\'s state, slots and load, and - where the load is unknown', () => {
    const known = peer({ name: 'gpu-box', load: { cpu: 0.37, memUsed: 2 * 1024 ** 3, memTotal: 8 * 1024 ** 3, gpus: [{ util: 0.85, memUsed: null, memTotal: null }] } })
    const table = meshTable([peer({ name: 'old', state: 'dead' }), known], 1_002_000).text
    expect(table).toMatch(/data-peer="old" data-state="dead">[\s\S]*DEAD[\s\S]*<td class="num">-<\/td>[\s\S]*<td class="load">-<\/td>/)
    expect(table).toMatch(/data-peer="gpu-box"[\s\S]*3 \/ 4[\s\S]*37%[\s\S]*2\.0\/8\.0 GiB[\s\S]*0: 85%/)
    expect(table).toContain('<th scope="col">Name</th>')
  })

  it('shows a campaign\'s counts and dead letters, and the sample its chart takes', () => {
    const live = campaignLive(campaign(), 5000).text
    expect(live).toContain('data-count="done">4<')
    expect(live).toContain('data-count="pending">3<')
    expect(live).toMatch(/id="dead-letters"[\s\S]*<th scope="row">7<\/th><td class="num">3<\/td>/)
    const sample = /data-sample="([^"]*)"/.exec(live)![1]!.replaceAll('&quot;', '"')
    expect(JSON.parse(sample)).toEqual({ t: 5, done: 4, workers: { 'lab-2': 4 }, accelerators: { 'unknown (not in the mesh now)': 4 } })
  })

  it('groups throughput by the workers\' accelerators and draws the duration histogram from the first to the last non-empty bucket', () => {
    const hist = new DurationHistogram()
    for (const ms of [40, 50, 2500, 2500, 2999]) hist.add(ms)
    const s = campaign({
      workers: [
        { peer: 'p-gpu', name: 'gpu-1', done: 6, failed: 0, busyMs: 600 },
        { peer: 'p-cpu1', name: 'cpu-1', done: 2, failed: 0, busyMs: 800 },
        { peer: 'p-cpu2', name: 'cpu-2', done: 3, failed: 1, busyMs: 900 }
      ],
      durations: hist.snapshot()
    })
    const of = new Map([['p-gpu', 'cuda×1'], ['p-cpu1', 'avx512'], ['p-cpu2', 'avx512']])
    expect(byAccelerator(s, of)).toEqual([
      { accelerators: 'cuda×1', workers: 1, done: 6, busyMs: 600 },
      { accelerators: 'avx512', workers: 2, done: 5, busyMs: 1700 }
    ])
    const live = campaignLive(s, 5000, of).text
    expect(live).toMatch(/id="accelerators"[\s\S]*<th scope="row">avx512<\/th><td class="num">2<\/td><td class="num">5<\/td>/)
    // 40 and 50 ms in ≤ 100 ms, none in ≤ 300 ms or ≤ 1 s, three in ≤ 3 s; nothing shown below or above
    const rows = [...live.matchAll(/<tr><th scope="row">(≤ [^<]+)<\/th><td class="num">(\d+)<\/td><td><meter/g)].map(m => [m[1], Number(m[2])])
    expect(rows).toEqual([['≤ 100 ms', 2], ['≤ 300 ms', 0], ['≤ 1.0 s', 0], ['≤ 3.0 s', 3]])
    expect(campaignLive(campaign(), 5000).text).toContain('No shard durations yet.')
  })

  it('joins arrays and drops null, undefined and false', () => {
    expect(html`<p>${['a', html`<b>b</b>`, null, undefined, false, 0]}</p>`.text).toBe('<p>a<b>b</b>0</p>')
  })
})

describe('dashboard logins', () => {
  it('a ticket opens one session, once', () => {
    const logins = new DashboardLogins()
    const { ticket } = logins.issueTicket()
    const session = logins.redeem(ticket)
    expect(session).not.toBeNull()
    expect(logins.session(session!.id)).toEqual(session)
    expect(logins.redeem(ticket)).toBeNull()
    expect(logins.redeem('forged')).toBeNull()
    expect(logins.session('forged')).toBeNull()
    expect(logins.csrfMatches(session!, session!.csrf)).toBe(true)
    expect(logins.csrfMatches(session!, 'nope')).toBe(false)
    expect(logins.csrfMatches(session!, undefined)).toBe(false)
  })

  it('a ticket expires after a minute, a session after its lifetime', () => {
    vi.useFakeTimers()
    const logins = new DashboardLogins({ sessionTtlMs: 3600_000 })
    const late = logins.issueTicket()
    vi.advanceTimersByTime(TICKET_TTL_MS)
    expect(logins.redeem(late.ticket)).toBeNull()
    const session = logins.redeem(logins.issueTicket().ticket)!
    vi.advanceTimersByTime(3600_000 - 1)
    expect(logins.session(session.id)).not.toBeNull()
    vi.advanceTimersByTime(1)
    expect(logins.session(session.id)).toBeNull()
  })
})

describe('the dashboard app', () => {
  const cancelled: string[] = []
  const campaigns = {
    list: async () => [campaign()],
    status: async (id: string) => id === 'c-abc' ? campaign() : null,
    cancel: async (id: string) => { cancelled.push(id); return campaign({ state: 'CANCELLED' }) }
  } as unknown as CampaignApi
  const dashboard = new Dashboard({
    nodeName: () => 'lab-1', peers: async () => [peer({ name: 'lab-7' })], campaigns, info: () => ({}), logFile: '/nonexistent/node.log', log: silentLogger(), signal: new AbortController().signal
  })
  const app = dashboard.app

  async function login (): Promise<{ cookie: string, csrf: string }> {
    const { ticket } = dashboard.logins.issueTicket()
    const res = await app.request(`/ui/login?ticket=${ticket}`)
    expect(res.status).toBe(303)
    expect(res.headers.get('location')).toBe('/ui/')
    const set = res.headers.get('set-cookie')!
    expect(set).toMatch(/HttpOnly/)
    expect(set).toMatch(/SameSite=Strict/)
    const cookie = set.split(';')[0]!
    const page = await (await app.request('/ui/', { headers: { cookie } })).text()
    return { cookie, csrf: JSON.parse(/hx-headers='([^']*)'/.exec(page)![1]!.replaceAll('&quot;', '"'))['x-csrf-token'] }
  }

  it('refuses pages without a session, with a forged one, and a spent ticket', async () => {
    const none = await app.request('/ui/')
    expect(none.status).toBe(401)
    expect(await none.text()).toContain('zp dashboard')
    expect((await app.request('/ui/campaigns', { headers: { cookie: `${SESSION_COOKIE}=forged` } })).status).toBe(401)
    expect((await app.request('/ui/events/mesh')).status).toBe(401)
    const { ticket } = dashboard.logins.issueTicket()
    expect((await app.request(`/ui/login?ticket=${ticket}`)).status).toBe(303)
    expect((await app.request(`/ui/login?ticket=${ticket}`)).status).toBe(401)
  })

  it('serves the pages of a session, and runs a POST only with its CSRF token', async () => {
    const { cookie, csrf } = await login()
    const mesh = await app.request('/ui/', { headers: { cookie } })
    expect(mesh.status).toBe(200)
    expect(mesh.headers.get('content-security-policy')).toContain("default-src 'self'")
    expect(await mesh.text()).toContain('data-peer="lab-7"')
    expect(await (await app.request('/ui/campaigns/c-abc', { headers: { cookie } })).text()).toContain('id="campaign-live"')
    expect((await app.request('/ui/campaigns/c-nope', { headers: { cookie } })).status).toBe(404)
    expect((await app.request('/ui/campaigns/c-abc/cancel', { method: 'POST', headers: { cookie } })).status).toBe(401)
    expect(cancelled).toEqual([])
    const ok = await app.request('/ui/campaigns/c-abc/cancel', { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } })
    expect(await ok.text()).toContain('CANCELLED')
    expect(cancelled).toEqual(['c-abc'])
  })

  it('serves its scripts and styles from the package, not a CDN', async () => {
    for (const name of ['htmx.min.js', 'sse.js', 'uPlot.iife.min.js', 'uPlot.min.css', 'dashboard.js', 'dashboard.css']) {
      const res = await app.request(`/ui/assets/${name}`)
      expect(res.status, name).toBe(200)
      expect((await res.arrayBuffer()).byteLength, name).toBeGreaterThan(500)
    }
    expect((await app.request('/ui/assets/..%2Fapp.ts')).status).toBe(404)
  })
})
