import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { certPaths } from '../../bootstrap/certs/layout.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import { resolveApiTarget } from '../../node/api/client.ts'
import { freePort, stopProcess, waitFor } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

// deploy/caddy/Caddyfile as an operator runs it: Debian's caddy in front of a real node, certificates from
// `zp-node certs init`, and clients with the right, no, and a foreign certificate.

const exec = promisify(execFile)
const CADDYFILE = fileURLToPath(new URL('../../deploy/caddy/Caddyfile', import.meta.url))

function caddyVersion (): string | undefined {
  try {
    return execFileSync('caddy', ['version'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}
const CADDY = caddyVersion()
const SKIP = 'skipped: caddy is not installed (apt-get install caddy: Debian bookworm ships 2.6.2)'

type Outcome = { status: number, body: string } | { error: string }

/** GET through the front; a refused TLS session is an outcome too, not a throw. */
async function get (url: string, tls: { ca: string, cert?: string, key?: string }): Promise<Outcome> {
  const [ca, cert, key] = await Promise.all([tls.ca, tls.cert, tls.key].map(async f => f == null ? undefined : await readFile(f)))
  return await new Promise<Outcome>(resolve => {
    const req = request(url, { ca, cert, key, agent: false, signal: AbortSignal.timeout(10_000) }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => { body += d }).on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
        .on('error', (err: NodeJS.ErrnoException) => { resolve({ error: err.code ?? err.message }) })
    })
    req.on('error', (err: NodeJS.ErrnoException) => { resolve({ error: err.code ?? err.message }) })
    req.end()
  })
}

let mesh: ProcessMesh
let node: LocalNode
let caddy: ChildProcess | undefined
let caddyLog = ''
let env: NodeJS.ProcessEnv
let front: string
let certs: ReturnType<typeof certPaths>
let otherCerts: ReturnType<typeof certPaths>

beforeAll(async () => {
  if (CADDY == null) {
    console.warn(SKIP)
    return
  }
  mesh = await createProcessMesh()
  const made = await Promise.all(['certs', 'other-ca'].map(async dir => await runCli('zp-node', ['certs', 'init', '--out', join(mesh.root, dir), '--name', '127.0.0.1', '--name', 'localhost'])))
  for (const r of made) expect(r, r.stderr).toMatchObject({ code: 0 })
  certs = certPaths(join(mesh.root, 'certs'))
  otherCerts = certPaths(join(mesh.root, 'other-ca'))
  node = await mesh.start('fronted')
  const target = await resolveApiTarget({ dataDir: node.dataDir })
  const port = await freePort()
  front = `https://127.0.0.1:${port}`
  const home = join(mesh.root, 'caddy-home')
  env = {
    ...process.env,
    // caddy keeps its autosave and storage under these: inside the test's folder, nothing in the real home
    HOME: home,
    XDG_CONFIG_HOME: join(home, 'config'),
    XDG_DATA_HOME: join(home, 'data'),
    ZP_CERTS: join(mesh.root, 'certs'),
    ZP_FRONT_BIND: '127.0.0.1',
    ZP_FRONT_PORT: String(port),
    ZP_API: new URL(target.url).host,
    ZP_API_TOKEN: target.token,
    ZP_CADDY_ADMIN: 'off'
  }
})

afterAll(async () => {
  await stopProcess(caddy)
  await mesh?.stop()
})

describe('deploy/caddy: the mTLS front before a node\'s control API', () => {
  it('validates with caddy, then answers /v1/node only to clients with a certificate from the CA', async ({ skip }) => {
    if (CADDY == null) return skip(SKIP)
    const validated = await exec('caddy', ['validate', '--config', CADDYFILE, '--adapter', 'caddyfile'], { env })
    expect(validated.stdout + validated.stderr).toContain('Valid configuration')

    caddy = spawn('caddy', ['run', '--config', CADDYFILE, '--adapter', 'caddyfile'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    caddy.stdout!.on('data', (d: Buffer) => { caddyLog += String(d) })
    caddy.stderr!.on('data', (d: Buffer) => { caddyLog += String(d) })
    const admin = { ca: certs.caCert, cert: certs.clientCert('admin'), key: certs.clientKey('admin') }
    // by IP address (no SNI) and by name: both reach the node; the front adds the node's token, the client sends none
    const answer = await waitFor(async () => {
      if (caddy!.exitCode != null) throw new Error(`caddy exited with ${caddy!.exitCode}: ${caddyLog}`)
      const r = await get(`${front}/v1/node`, admin)
      return 'status' in r ? r : undefined
    }, { timeoutMs: 30_000, what: `caddy to answer on ${front}` })
    expect(answer.status, answer.body).toBe(200)
    expect(JSON.parse(answer.body)).toMatchObject({ peerId: node.info!.peerId })
    const byName = await get(`${front.replace('127.0.0.1', 'localhost')}/v1/node`, admin)
    expect(byName).toMatchObject({ status: 200 })

    // no client certificate: refused in the TLS handshake (Go's TLS sends a bad_certificate alert; a reset may
    // overtake it), nothing reaches the node
    const refused = { error: expect.stringMatching(/ALERT|ECONNRESET/) }
    expect(await get(`${front}/v1/node`, { ca: certs.caCert })).toEqual(refused)
    expect(await get(`${front.replace('127.0.0.1', 'localhost')}/v1/node`, { ca: certs.caCert })).toEqual(refused)
    // a certificate from another CA (another front's admin): refused the same way
    expect(await get(`${front}/v1/node`, { ca: certs.caCert, cert: otherCerts.clientCert('admin'), key: otherCerts.clientKey('admin') })).toEqual(refused)

    // a client added later with the same CA gets in without touching caddy
    expect((await runCli('zp-node', ['certs', 'add-client', 'late', '--out', env.ZP_CERTS!])).code).toBe(0)
    const late = await get(`${front}/v1/node`, { ca: certs.caCert, cert: certs.clientCert('late'), key: certs.clientKey('late') })
    expect(late).toMatchObject({ status: 200 })
  })
})
