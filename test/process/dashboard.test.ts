import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LocalNode } from '../../bootstrap/local.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

const CHROMIUM = '/usr/bin/chromium'
const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
/** ZP_SCREENSHOTS=1 saves a picture of each page for the README; a normal run writes nothing into the repository */
const SCREENSHOTS = process.env.ZP_SCREENSHOTS === '1' ? fileURLToPath(new URL('../../node/dashboard/screenshots/', import.meta.url)) : null
/** the DOM changes through server-sent events; these bound how long a change may take on a loaded machine */
const LIVE_MS = 30_000

/** The little of the DOM the page functions below use (this project compiles without the DOM types). */
interface Dom {
  document: { querySelector: (selector: string) => { dataset: Record<string, string | undefined>, textContent: string | null } | null }
  /** set on the loaded document, so that a test can tell the page changed without a reload */
  sameDocument?: boolean
}
const markDocument = (): void => { (globalThis as unknown as Dom).sameDocument = true }
const sameDocument = (): boolean => (globalThis as unknown as Dom).sameDocument === true

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }
let nodes: LocalNode[]
let browser: Browser
let page: Page
let loginUrl: string

async function shot (name: string): Promise<void> {
  if (SCREENSHOTS == null) return
  await mkdir(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true })
}

async function submit (name: string, body: Record<string, unknown>): Promise<string> {
  const file = join(scratch.path, `${name}.yaml`)
  await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, ...body }))
  const r = await runCli('zp', ['submit', file, '--data-dir', nodes[0]!.dataDir])
  expect(r.code, r.stderr).toBe(0)
  return r.stdout.trim()
}

/** The state the mesh page shows for each peer, by name. */
async function shownStates (): Promise<Record<string, string>> {
  return await page.$$eval('#mesh-table tbody tr', rows => Object.fromEntries(rows.map(r => [r.getAttribute('data-peer'), r.getAttribute('data-state')])))
}

const suite = existsSync(CHROMIUM) ? describe : describe.skip
suite(existsSync(CHROMIUM) ? 'the web dashboard, in Chromium' : `the web dashboard: skipped, ${CHROMIUM} is missing (apt-get install chromium)`, () => {
  beforeAll(async () => {
    scratch = await tempDir('zp-proc-dashboard-')
    mesh = await createProcessMesh()
    const a = await mesh.start('a', { args: ['--slots', '2'] })
    const [b, c] = await Promise.all([mesh.start('b', { via: a, args: ['--slots', '2'] }), mesh.start('c', { via: a, args: ['--slots', '2'] })])
    nodes = [a, b, c]
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
    })
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
  })
  afterAll(async () => {
    await browser?.close()
    await mesh?.stop()
    await scratch?.remove()
  })

  it('logs in with the link zp dashboard prints, and lists the three nodes ALIVE, live', async () => {
    const r = await runCli('zp', ['dashboard', '--print-url', '--data-dir', nodes[0]!.dataDir])
    expect(r.code, r.stderr).toBe(0)
    loginUrl = r.stdout.trim()
    expect(loginUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ui\/login\?ticket=[\w-]{32,}$/)
    const res = await page.goto(loginUrl)
    expect(res?.status()).toBe(200)
    expect(new URL(page.url()).pathname).toBe('/ui/')
    await waitFor(async () => Object.values(await shownStates()).filter(s => s === 'alive').length === 3 ? true : undefined, { timeoutMs: LIVE_MS, what: 'the mesh page to list a, b and c ALIVE' })
    expect(await shownStates()).toEqual({ a: 'alive', b: 'alive', c: 'alive' })
    await expect.poll(async () => (await page.locator('#mesh-table tbody tr').first().locator('td').nth(4).textContent())?.trim()).toMatch(/^\d+ \/ 2$/)
    await shot('mesh')
  })

  it('refuses a spent link, a missing session and a forged one', async () => {
    const fresh = await browser.newContext()
    try {
      const other = await fresh.newPage()
      const spent = await other.goto(loginUrl)
      expect(spent?.status()).toBe(401)
      expect(await other.textContent('main')).toContain('zp dashboard')
      const origin = new URL(loginUrl).origin
      expect((await other.goto(`${origin}/ui/`))?.status()).toBe(401)
      expect((await other.goto(`${origin}/ui/campaigns`))?.status()).toBe(401)
      await fresh.addCookies([{ name: 'zp_session', value: 'forged-session-id', url: origin }])
      expect((await other.goto(`${origin}/ui/`))?.status()).toBe(401)
      expect(await other.textContent('main')).toMatch(/session is not valid/)
    } finally {
      await fresh.close()
    }
  })

  it('shows a campaign\'s progress rising to 100% without a reload', async () => {
    const id = await submit('slow-squares', { shards: { iterations: { total: 240, perShard: 10, seed: 1 } }, params: { slowMs: 100 } })
    await page.goto(new URL(`/ui/campaigns/${id}`, loginUrl).href)
    await page.evaluate(markDocument)
    const progress = async (): Promise<number> => Number(await page.getAttribute('#campaign-live .progress-text', 'data-progress'))
    const seen = new Set<number>()
    await waitFor(async () => {
      seen.add(await progress())
      return await page.getAttribute('#campaign-live', 'data-state') === 'SUCCEEDED' ? true : undefined
    }, { timeoutMs: 90_000, intervalMs: 200, what: 'the campaign page to show the campaign SUCCEEDED' })
    expect(await progress()).toBe(1)
    expect(await page.textContent('#campaign-live .progress-text')).toBe('100.0%')
    // it rose on the page: values below 100% were shown before it
    expect(Math.min(...seen)).toBeLessThan(1)
    expect(await page.evaluate(sameDocument)).toBe(true)
    expect(Number(await page.textContent('#shard-counts [data-count="done"]'))).toBe(24)
    // every shard in the duration histogram (about 1 s each: the ≤ 1.0 s and ≤ 3.0 s bars), and the one accelerator kind's row
    const bars = await page.locator('#durations meter').evaluateAll(ms => ms.map(m => Number(m.getAttribute('value'))))
    expect(bars.reduce((a, b) => a + b, 0)).toBe(24)
    expect(await page.locator('#accelerators tbody tr').count()).toBe(1)
    await expect.poll(async () => await page.locator('#throughput-chart canvas').count()).toBeGreaterThan(0)
    await shot('campaign')
    await page.goto(new URL('/ui/campaigns', loginUrl).href)
    expect(await page.getAttribute(`#campaigns-table tr[data-campaign="${id}"]`, 'data-state')).toBe('SUCCEEDED')
    await shot('campaigns')
  })

  it('shows a failing campaign\'s dead letters with their errors', async () => {
    const id = await submit('cursed-squares', { shards: { iterations: { total: 4, perShard: 1, seed: 2 } }, params: { failShard: 1, failForGood: true } })
    await page.goto(new URL(`/ui/campaigns/${id}`, loginUrl).href)
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelector('#dead-letters tbody')?.textContent?.includes('shard 1 is cursed'), undefined, { timeout: LIVE_MS })
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelector('#campaign-live')?.dataset.state === 'FAILED', undefined, { timeout: LIVE_MS })
    expect(await page.textContent('#dead-letters tbody th')).toBe('1')
  })

  it('shows this node\'s probe report and log', async () => {
    await page.goto(new URL('/ui/node', loginUrl).href)
    expect(await page.textContent('#capabilities caption')).toMatch(/\d+ capabilities/)
    expect(await page.locator('#log-tail tbody tr').count()).toBeGreaterThan(5)
    await shot('node')
  })

  it('turns a node killed with SIGKILL DEAD on the mesh page', async () => {
    await page.goto(new URL('/ui/', loginUrl).href)
    await page.evaluate(markDocument)
    nodes[2]!.kill('SIGKILL')
    await page.waitForFunction(() => (globalThis as unknown as Dom).document.querySelector('#mesh-table tr[data-peer="c"]')?.dataset.state === 'dead', undefined, { timeout: LIVE_MS })
    expect(await shownStates()).toEqual({ a: 'alive', b: 'alive', c: 'dead' })
    expect(await page.evaluate(sameDocument)).toBe(true)
  })
})
