import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { accessSync, constants, existsSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { copyFile, mkdir, readFile, utimes, writeFile } from 'node:fs/promises'
import { basename, delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generatePskFile } from '../../node/psk.ts'
import { CapabilityReportSchema } from '../../protocols/membership/capabilities.ts'
import { freePort, tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, logLines, runCli, waitForStates, type ProcessMesh } from './harness.ts'

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

let scratch: { path: string, remove: () => Promise<void> }
beforeAll(async () => { scratch = await tempDir('zp-cli-') })
afterAll(async () => { await scratch.remove() })

describe('zp-node command line', () => {
  it('rejects a malformed bootstrap multiaddr with exit code 2 and an example', async () => {
    const r = await runCli('zp-node', ['join', '/ip4/10.0.0.1/tcpx/9', '--data-dir', join(scratch.path, 'bad-join')])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/invalid bootstrap multiaddr '\/ip4\/10.0.0.1\/tcpx\/9'/)
    expect(r.stderr).toContain('/ip4/10.0.0.1/tcp/4170/p2p/')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    const noPort = await runCli('zp-node', ['join', 'lab-box', '--data-dir', join(scratch.path, 'bad-join')])
    expect(noPort.code).toBe(2)
  })

  it('rejects bad flags with exit code 2: a non-loopback API, a non-number, a bad peer ID', async () => {
    const dir = join(scratch.path, 'bad-flags')
    const api = await runCli('zp-node', ['start', '--data-dir', dir, '--api', '0.0.0.0:7000'])
    expect(api.code).toBe(2)
    expect(api.stderr).toMatch(/loopback/)
    const slots = await runCli('zp-node', ['start', '--data-dir', dir, '--slots', 'many'])
    expect(slots.code).toBe(2)
    expect(slots.stderr).toMatch(/--slots takes a positive whole number/)
    const trust = await runCli('zp-node', ['start', '--data-dir', dir, '--trust', 'bob'])
    expect(trust.code).toBe(2)
    expect(trust.stderr).toMatch(/not a peer ID/)
  })

  it('refuses a --psk file that is missing or not a key with exit code 2, leaving the data dir unwritten', async () => {
    const dir = join(scratch.path, 'psk-missing')
    const missing = join(scratch.path, 'no-such.key')
    const r = await runCli('zp-node', ['start', '--data-dir', dir, '--psk', missing, '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', '--no-onnx-probe'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`zp-node: error: cannot read pre-shared key ${missing}: ENOENT; create one with: zp-node psk generate ${missing}\n`)
    expect(existsSync(dir)).toBe(false)
    const notKey = join(scratch.path, 'not-a.key')
    await writeFile(notKey, 'hello\n')
    const bad = await runCli('zp-node', ['join', '127.0.0.1:4170', '--data-dir', dir, '--psk', notKey])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/is not a libp2p swarm key/)
    expect(existsSync(dir)).toBe(false)
  })

  it('refuses liveness timings that cannot work with exit code 2, naming both flags and the fix', async () => {
    const dir = join(scratch.path, 'timings')
    const suspect = await runCli('zp-node', ['start', '--data-dir', dir, '--heartbeat-ms', '1000', '--suspect-after-ms', '500'])
    expect(suspect.code).toBe(2)
    expect(suspect.stderr).toMatch(/^zp-node: error: --suspect-after-ms 500 must be above --heartbeat-ms 1000: .*; set --suspect-after-ms to a few heartbeats \(e\.g\. 4000\) or lower --heartbeat-ms\n$/)
    const dead = await runCli('zp-node', ['join', '127.0.0.1:4170', '--data-dir', dir, '--suspect-after-ms', '5000', '--dead-after-ms', '5000'])
    expect(dead.code).toBe(2)
    expect(dead.stderr).toMatch(/--dead-after-ms 5000 must be above --suspect-after-ms 5000: .*set --dead-after-ms higher/)
    expect(existsSync(dir)).toBe(false)
  })

  it('keeps one identity per data dir, readable by its owner only', async () => {
    const dir = join(scratch.path, 'ident')
    const first = await runCli('zp-node', ['id', '--data-dir', dir])
    const second = await runCli('zp-node', ['id', '--data-dir', dir])
    expect(first.code).toBe(0)
    expect(first.stdout.trim()).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]+$/)
    expect(second.stdout).toBe(first.stdout)
    expect(statSync(join(dir, 'identity.key')).mode & 0o777).toBe(0o600)
    const other = await runCli('zp-node', ['id', '--data-dir', join(scratch.path, 'ident2')])
    expect(other.stdout).not.toBe(first.stdout)
  })

  it('generates pre-shared keys in libp2p format (0600) and will not overwrite one', async () => {
    const file = join(scratch.path, 'mesh.key')
    const made = await runCli('zp-node', ['psk', 'generate', file])
    expect(made.code).toBe(0)
    expect(made.stdout).toMatch(/fingerprint [0-9a-f]{16}/)
    expect(await readFile(file, 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    const again = await runCli('zp-node', ['psk', 'generate', file])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/already exists; pass --force/)
  })

  it('probes this machine: a schema-valid JSON report, and a readable table', async () => {
    const json = await runCli('zp-node', ['probe', '--json'])
    expect(json.code).toBe(0)
    const report = CapabilityReportSchema.parse(JSON.parse(json.stdout))
    expect(report.capabilities['onnx.ep.cpu']?.status).toBe('ok')
    expect(report.host.cores).toBeGreaterThan(0)
    const table = await runCli('zp-node', ['probe', '--no-onnx-probe'])
    expect(table.code).toBe(0)
    expect(table.stdout).toMatch(/gpu\.nvidia\.cuda\s+unavailable/)
  })

  it('gives a one-line error, not a stack trace, on Node 20 or older', async () => {
    // the machine's own node is the old one; npm puts the pinned Node 24 first on PATH
    const old = (process.env.PATH ?? '').split(delimiter)
      .filter(d => !d.includes('node_modules'))
      .map(d => join(d, 'node'))
      .find(p => {
        try {
          accessSync(p, constants.X_OK)
          return Number(execFileSync(p, ['-p', 'process.versions.node.split(".")[0]']).toString().trim()) < 22
        } catch {
          return false
        }
      })
    if (old == null) {
      console.warn('skipped: no Node older than 22 on PATH outside node_modules')
      return
    }
    for (const bin of ['zp-node', 'zp'] as const) {
      const r = await runCli(bin, ['--version'], { node: old })
      expect(r.code).toBe(1)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/Node\.js 22\.18 or newer is required/)
    }
  })
})

describe('zp-node join and zp against running nodes', () => {
  let mesh: ProcessMesh
  beforeAll(async () => { mesh = await createProcessMesh() })
  afterAll(async () => { await mesh.stop() })

  it('keeps retrying an unreachable bootstrap with backoff, saying so, then joins once it is up', async () => {
    const port = await freePort()
    const joiner = await mesh.start('patient', { via: `127.0.0.1:${port}` })
    const retries = await waitFor(async () => {
      const lines = (await logLines(joiner)).filter(l => /bootstrap peer unreachable/.test(String(l.msg)))
      return lines.length >= 3 ? lines : undefined
    }, { timeoutMs: 60_000, what: 'three retry log lines' })
    const waits = retries.map(l => Number(l.retryInMs))
    expect(waits[2]!).toBeGreaterThan(waits[0]!)
    expect(String(retries[0]!.msg)).toMatch(/ECONNREFUSED.*retrying in/)
    // not ok while no bootstrap has answered: health says why, and what was tried
    const api = await mesh.api(joiner)
    const joining = await api.get<Record<string, unknown>>('/v1/health')
    expect(joining).toMatchObject({ status: 'joining', state: 'running', reason: expect.stringMatching(/^not in the mesh yet: no bootstrap peer has answered/) })
    expect(joining.bootstrap).toEqual([{ address: `/ip4/127.0.0.1/tcp/${port}`, attempts: expect.any(Number), lastError: expect.stringMatching(/ECONNREFUSED/) }])
    expect((joining.bootstrap as Array<{ attempts: number }>)[0]!.attempts).toBeGreaterThanOrEqual(3)
    const late = await mesh.start('late-bootstrap', { args: ['--listen', `/ip4/127.0.0.1/tcp/${port}`] })
    await waitForStates(mesh, late, ['patient'], 'alive', 90_000)
    await waitForStates(mesh, joiner, ['late-bootstrap'], 'alive', 30_000)
    expect(await api.get('/v1/health')).toEqual({ status: 'ok', state: 'running' })
  })

  it('writes node.json with peer ID, addresses, API URL and pid; refuses a second node on the same data dir', async () => {
    const node = await mesh.start('solo')
    const info = JSON.parse(await readFile(join(node.dataDir, 'node.json'), 'utf8')) as Record<string, unknown>
    expect(info).toMatchObject({ name: 'solo', pid: node.pid, api: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) })
    expect(info.multiaddrs).toEqual(expect.arrayContaining([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)]))
    expect(statSync(join(node.dataDir, 'api-token')).mode & 0o777).toBe(0o600)
    const twin = await runCli('zp-node', ['start', '--data-dir', node.dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--no-onnx-probe'])
    expect(twin.code).toBe(2)
    expect(twin.stderr).toMatch(/in use by another zp-node; stop that node or pass another --data-dir/)
  })

  it('refuses API requests without the right token', async () => {
    const node = mesh.nodes.find(n => n.name === 'solo')!
    const url = node.info!.api!
    expect((await fetch(`${url}/v1/health`)).status).toBe(401)
    expect((await fetch(`${url}/v1/peers`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    const token = (await readFile(join(node.dataDir, 'api-token'), 'utf8')).trim()
    const health = await fetch(`${url}/v1/health`, { headers: { authorization: `Bearer ${token}` } })
    expect(await health.json()).toEqual({ status: 'ok', state: 'running' })
    const r = await runCli('zp', ['peers', '--api', url, '--token', 'wrong'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/refused the API token/)
  })

  it('answers a request body that is not JSON with a 400 saying so', async () => {
    const node = mesh.nodes.find(n => n.name === 'solo')!
    const token = (await readFile(join(node.dataDir, 'api-token'), 'utf8')).trim()
    const res = await fetch(`${node.info!.api!}/v1/campaigns`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{not json' })
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({ error: 'invalid_request', message: expect.stringMatching(/^the request body is not valid JSON \(/) })
  })

  it('zp submit refuses a campaign of more shards than a coordinator can track with exit code 2, naming the limit and the fix', async () => {
    const node = mesh.nodes.find(n => n.name === 'solo')!
    const folder = join(scratch.path, 'huge')
    await mkdir(folder)
    await copyFile(SQUARES, join(folder, 'squares.mjs'))
    const file = join(folder, 'huge.json')
    await writeFile(file, JSON.stringify({ name: 'huge', workload: { kind: 'module', module: './squares.mjs' }, shards: { iterations: { total: 1e12, perShard: 1, seed: 1 } } }))
    const r = await runCli('zp', ['submit', file, '--data-dir', node.dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/shards\.iterations\.perShard: 1,000,000,000,000 shards is more than a campaign may have \(1,000,000,000\); raise perShard to at least 1,000/)
  })

  it('a node with another pre-shared key is warned about on the accepting side too: its address, this key\'s fingerprint, the fix; once, not per retry', async () => {
    const keyA = join(scratch.path, 'mesh-a.key')
    const keyB = join(scratch.path, 'mesh-b.key')
    const { fingerprint } = await generatePskFile(keyA)
    await generatePskFile(keyB)
    const a = await mesh.start('private-a', { args: ['--psk', keyA] })
    const b = await mesh.start('private-b', { via: a, args: ['--psk', keyB] })
    const warnings = async (): Promise<Array<Record<string, unknown>>> => (await logLines(a)).filter(l => l.component === 'handshake')
    const first = await waitFor(async () => (await warnings())[0], { timeoutMs: 30_000, what: 'private-a to warn about the failed handshake' })
    expect(first).toMatchObject({ level: 40, pskFingerprint: fingerprint, remoteAddr: expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/) })
    expect(String(first.msg)).toMatch(new RegExp(`^a peer at ${String(first.remoteAddr)} failed the private-network handshake with this node \\(key fingerprint ${fingerprint}\\): .*--psk FILE`))
    await waitFor(async () => (await logLines(b)).filter(l => /bootstrap peer unreachable/.test(String(l.msg))).length >= 3, { timeoutMs: 60_000, what: 'private-b to retry three times' })
    expect(await warnings()).toHaveLength(1)
    await b.stop(10_000)
  })

  it('zp-node start --data-root lets a campaign name a file under that folder; one outside is refused with exit 2', async () => {
    const shared = join(scratch.path, 'shared')
    const elsewhere = join(scratch.path, 'elsewhere')
    const campaigns = join(scratch.path, 'campaigns')
    for (const d of [shared, elsewhere, campaigns]) await mkdir(d)
    await copyFile(SQUARES, join(shared, 'squares.mjs'))
    await copyFile(SQUARES, join(elsewhere, 'squares.mjs'))
    const node = await mesh.start('data-root', { args: ['--data-root', shared] })
    const submit = async (module: string): Promise<{ code: number, stdout: string, stderr: string }> => {
      const file = join(campaigns, `${basename(dirname(module))}.json`)
      await writeFile(file, JSON.stringify({ name: 'rooted', workload: { kind: 'module', module }, shards: { iterations: { total: 4, perShard: 2, seed: 1 } } }))
      return await runCli('zp', ['submit', file, '--wait', '--json', '--data-dir', node.dataDir], { timeoutMs: 120_000 })
    }
    const allowed = await submit(join(shared, 'squares.mjs'))
    expect(allowed.code === 0 ? '' : allowed.stderr).toBe('')
    expect(allowed.code).toBe(0)
    expect(JSON.parse(allowed.stdout)).toMatchObject({ state: 'SUCCEEDED', shards: { done: 2 } })
    const refused = await submit(join(elsewhere, 'squares.mjs'))
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`${join(elsewhere, 'squares.mjs')}, outside the campaign's folder ${campaigns} or this node's --data-root folders (`)
    expect(refused.stderr).toContain(shared)
  })

  it('zp-node gc removes what nothing uses, asking the running node (--dry-run only counts); zp-node status shows the store; no node: exit 1', async () => {
    const dataDir = join(scratch.path, 'gc-node')
    // a blob from before, used two days ago, that no campaign names
    const orphan = Buffer.from('an orphaned data set\n')
    const hash = createHash('sha256').update(orphan).digest('hex')
    const file = join(dataDir, 'blobs', hash.slice(0, 2), hash)
    await mkdir(dirname(file), { recursive: true })
    await writeFile(file, orphan)
    await utimes(file, new Date(Date.now() - 48 * 3600_000), new Date(Date.now() - 48 * 3600_000))
    const bad = await runCli('zp-node', ['start', '--data-dir', dataDir, '--blob-retention', 'soon'])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--blob-retention takes a duration such as 30m, 2h or 7d \(or 0\), got 'soon'/)
    await mesh.start('gc-node', { dataDir, args: ['--blob-retention', '1d'] })
    const status = await runCli('zp-node', ['status', '--data-dir', dataDir, '--json'])
    expect(JSON.parse(status.stdout)).toMatchObject({ name: 'gc-node', blobStore: { blobs: 1, bytes: orphan.length } })
    const dry = await runCli('zp-node', ['gc', '--data-dir', dataDir, '--dry-run', '--json'])
    expect(JSON.parse(dry.stdout)).toEqual({ dryRun: true, retentionMs: 86_400_000, removed: { blobs: 1, bytes: orphan.length }, kept: { blobs: 0, bytes: 0 } })
    expect(existsSync(file)).toBe(true)
    const gc = await runCli('zp-node', ['gc', '--data-dir', dataDir])
    expect(gc).toEqual({ code: 0, stdout: `removed 1 blob (${orphan.length} B); kept 0 blobs (0 B); retention 1d\n`, stderr: '' })
    expect(existsSync(file)).toBe(false)
    expect((await runCli('zp-node', ['status', '--data-dir', dataDir])).stdout).toMatch(/^blob store {2}0 blobs \(0 B\)$/m)
    const none = await runCli('zp-node', ['gc', '--data-dir', join(scratch.path, 'no-node-here')])
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/^zp-node: error: no running node found in .*no-node-here/)
  })

  it('zp peers explains a missing or stale node instead of failing obscurely', async () => {
    const none = await runCli('zp', ['peers', '--data-dir', join(scratch.path, 'nothing-here')])
    expect(none.code).toBe(1)
    expect(none.stderr).toMatch(/no running node found .*zp-node start/)
    const victim = await mesh.start('victim')
    victim.kill('SIGKILL')
    await victim.exited
    const stale = await runCli('zp', ['peers', '--data-dir', victim.dataDir])
    expect(stale.code).toBe(1)
    expect(stale.stderr).toMatch(new RegExp(`pid ${victim.pid}, which has exited`))
  })
})
