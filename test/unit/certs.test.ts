import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { addClient, initCerts } from '../../bootstrap/certs/files.ts'
import { certPaths } from '../../bootstrap/certs/layout.ts'
import { CertsInputError, checkDays, clientNames, serverNames } from '../../bootstrap/certs/names.ts'
import { tempDir } from '../helpers.ts'
import { runCli } from '../process/harness.ts'

// The pure choices first, then `zp-node certs` as people run it: the real program in a child process, real files.

/** the real zp-node program in a child process; never throws on a non-zero exit */
async function zpNode (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await runCli('zp-node', args)
}

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777
const cert = async (path: string): Promise<X509Certificate> => new X509Certificate(await readFile(path))

describe('certificate names (pure)', () => {
  it('defaults the server SANs to localhost, 127.0.0.1 and the hostname; a hostname that is no DNS name is left out', () => {
    expect(serverNames([], 'Lab-01')).toEqual({ dns: ['localhost', 'lab-01'], ips: ['127.0.0.1'] })
    expect(serverNames([], 'my_host')).toEqual({ dns: ['localhost'], ips: ['127.0.0.1'] })
  })

  it('sorts given names into DNS and IP entries, once each, IPv6 with or without brackets', () => {
    expect(serverNames(['front.lab', 'FRONT.lab', '10.77.0.2', '[fd00::2]', 'fd00::2'], 'x')).toEqual({ dns: ['front.lab'], ips: ['10.77.0.2', 'fd00::2'] })
  })

  it('refuses a name that is neither, naming --name', () => {
    expect(() => serverNames(['bad name'], 'x')).toThrow(CertsInputError)
    expect(() => serverNames(['-x.lab'], 'x')).toThrow(/--name '-x\.lab' is neither a DNS name/)
  })

  it('defaults the clients to admin; refuses a name twice or one that cannot be a file name', () => {
    expect(clientNames([])).toEqual(['admin'])
    expect(clientNames(['alice', 'ci.bot'])).toEqual(['alice', 'ci.bot'])
    expect(() => clientNames(['alice', 'alice'])).toThrow(/'alice' is given twice/)
    expect(() => clientNames(['../x'])).toThrow(/names the client's files/)
  })

  it('takes 1 to 825 days (what browsers accept for a server certificate)', () => {
    expect(checkDays(825)).toBe(825)
    expect(() => checkDays(826)).toThrow(/from 1 to 825/)
    expect(() => checkDays(0)).toThrow(CertsInputError)
  })

  it('lays out the CA, the server pair and clients/NAME', () => {
    const p = certPaths('/d')
    expect([p.caCert, p.caKey, p.serverCert, p.serverKey, p.clientCert('a'), p.clientKey('a')])
      .toEqual(['/d/ca.crt', '/d/ca.key', '/d/server.crt', '/d/server.key', '/d/clients/a.crt', '/d/clients/a.key'])
  })
})

/** A TLS handshake with client authentication, as the front does it: the server asks for a certificate from `ca`. */
async function mutualTls (dir: string, client: { cert: string, key: string }, servername: string): Promise<{ authorized: boolean, peerCn: unknown }> {
  const p = certPaths(dir)
  const server = createServer({ cert: await readFile(p.serverCert), key: await readFile(p.serverKey), ca: await readFile(p.caCert), requestCert: true, rejectUnauthorized: true }, (s) => { s.end('ok') })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  try {
    const port = (server.address() as { port: number }).port
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername, ca: await readFile(p.caCert), cert: await readFile(client.cert), key: await readFile(client.key) })
    await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve).once('error', reject) })
    const answer = await new Promise<string>((resolve, reject) => { let s = ''; socket.on('data', d => { s += String(d) }).once('end', () => { resolve(s) }).once('error', reject) })
    expect(answer).toBe('ok')
    return { authorized: socket.authorized, peerCn: socket.getPeerCertificate().subject?.CN }
  } finally {
    await new Promise<void>(resolve => server.close(() => { resolve() }))
  }
}

describe('zp-node certs', () => {
  let dir: { path: string, remove: () => Promise<void> }
  beforeEach(async () => { dir = await tempDir('zp-certs-') })
  afterEach(async () => { await dir.remove() })

  it('init writes a CA, a server certificate for the default names and an admin client; keys 0600 and never printed', async () => {
    const out = join(dir.path, 'certs')
    const r = await zpNode('certs', 'init', '--out', out)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).not.toContain('PRIVATE KEY')
    const p = certPaths(out)
    expect((await readdir(out)).sort()).toEqual(['ca.crt', 'ca.key', 'clients', 'server.crt', 'server.key'])
    expect((await readdir(p.clients)).sort()).toEqual(['admin.crt', 'admin.key'])
    for (const key of [p.caKey, p.serverKey, p.clientKey('admin')]) expect(await mode(key)).toBe(0o600)
    expect(await mode(p.clients)).toBe(0o700)

    const ca = await cert(p.caCert)
    const server = await cert(p.serverCert)
    const admin = await cert(p.clientCert('admin'))
    expect(ca.ca).toBe(true)
    expect(r.stdout).toContain(ca.fingerprint256)
    for (const leaf of [server, admin]) {
      expect(leaf.ca).toBe(false)
      expect(leaf.checkIssued(ca)).toBe(true)
      expect(leaf.verify(ca.publicKey)).toBe(true)
    }
    // the defaults (pinned above), as they come out for this machine's hostname
    const names = serverNames([], hostname())
    expect(names.dns).toContain('localhost')
    expect(server.subjectAltName).toBe([...names.dns.map(d => `DNS:${d}`), ...names.ips.map(ip => `IP Address:${ip}`)].join(', '))
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']) // serverAuth
    expect(admin.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']) // clientAuth
    expect(admin.subject).toContain('CN=admin')
    expect(server.checkPrivateKey(createPrivateKey(await readFile(p.serverKey)))).toBe(true)
    const days = (Date.parse(server.validTo) - Date.now()) / 86_400_000
    expect(days).toBeGreaterThan(364)
    expect(days).toBeLessThan(366)

    // what the front does with them: the client is accepted and the server's name checks out
    expect(await mutualTls(out, { cert: p.clientCert('admin'), key: p.clientKey('admin') }, 'localhost')).toEqual({ authorized: true, peerCn: 'localhost' })
  })

  it('init takes --name, --client and --days', async () => {
    const out = join(dir.path, 'certs')
    const r = await zpNode('certs', 'init', '--out', out, '--name', 'front.lab', '--name', '10.77.0.2', '--client', 'alice', '--client', 'ci', '--days', '30')
    expect(r.code).toBe(0)
    const p = certPaths(out)
    const server = await cert(p.serverCert)
    expect(server.subjectAltName).toBe('DNS:front.lab, IP Address:10.77.0.2')
    expect((await readdir(p.clients)).sort()).toEqual(['alice.crt', 'alice.key', 'ci.crt', 'ci.key'])
    expect(Math.round((Date.parse(server.validTo) - Date.now()) / 86_400_000)).toBe(30)
    expect(r.stdout).toContain('front.lab, 10.77.0.2')
  })

  it('init refuses a folder that holds certificates and changes nothing in it', async () => {
    const out = join(dir.path, 'certs')
    await initCerts(out, { names: serverNames([], 'x'), clients: ['admin'], days: 1 })
    const before = await readFile(certPaths(out).caKey)
    const r = await zpNode('certs', 'init', '--out', out)
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toContain(`${out} already holds certificates`)
    expect(r.stderr).toContain(`zp-node certs add-client NAME --out ${out}`)
    expect(await readFile(certPaths(out).caKey)).toEqual(before)
  })

  it('add-client signs one more client with the same CA and leaves the CA and the others alone', async () => {
    const out = join(dir.path, 'certs')
    await initCerts(out, { names: serverNames([], 'x'), clients: ['admin'], days: 1 })
    const p = certPaths(out)
    const kept = await Promise.all([p.caCert, p.caKey, p.serverCert, p.clientCert('admin')].map(async f => await readFile(f)))
    const r = await zpNode('certs', 'add-client', 'bob', '--out', out, '--days', '10')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await Promise.all([p.caCert, p.caKey, p.serverCert, p.clientCert('admin')].map(async f => await readFile(f)))).toEqual(kept)
    const bob = await cert(p.clientCert('bob'))
    expect(bob.checkIssued(await cert(p.caCert))).toBe(true)
    expect(bob.verify((await cert(p.caCert)).publicKey)).toBe(true)
    expect(await mode(p.clientKey('bob'))).toBe(0o600)
    expect(await mutualTls(out, { cert: p.clientCert('bob'), key: p.clientKey('bob') }, 'localhost')).toMatchObject({ authorized: true })

    const again = await zpNode('certs', 'add-client', 'bob', '--out', out)
    expect(again.code).toBe(2)
    expect(again.stderr).toContain(`already has a client 'bob'`)
  })

  it('add-client names the fix when the CA key is unreadable, not a key, or not the CA\'s', async () => {
    const out = join(dir.path, 'certs')
    const other = join(dir.path, 'other')
    await initCerts(out, { names: serverNames([], 'x'), clients: ['admin'], days: 1 })
    await initCerts(other, { names: serverNames([], 'x'), clients: [], days: 1 })
    const p = certPaths(out)
    const refusal = async (folder = out): Promise<string> => await addClient(folder, 'x', { days: 1 }).then(() => 'accepted', (err: Error) => `${err.name}: ${err.message}`)

    // a directory where the key should be: unreadable even for root, who reads past file modes
    await rm(p.caKey)
    await mkdir(p.caKey)
    expect(await refusal()).toContain(`CertsInputError: cannot read the CA key ${p.caKey} (EISDIR); run as the user that ran 'zp-node certs init --out ${out}'`)
    // the CLI's form of it: one line, exit 2
    const r = await zpNode('certs', 'add-client', 'x', '--out', out)
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^zp-node: error: cannot read the CA key .+ \(EISDIR\); run as the user/)])
    await rm(p.caKey, { recursive: true })
    await writeFile(p.caKey, 'not a key\n', { mode: 0o600 })
    expect(await refusal()).toContain(`${p.caKey} is not a CA key made by zp-node certs`)
    await writeFile(p.caKey, await readFile(certPaths(other).caKey))
    expect(await refusal()).toContain(`${p.caKey} is not the key of the CA in ${p.caCert}`)
    expect(await refusal(join(dir.path, 'none'))).toContain('cannot read the CA certificate')
    expect(await readdir(p.clients)).not.toContain('x.crt')
  })

  it('refuses bad --days with one line naming the range', async () => {
    const out = join(dir.path, 'certs')
    for (const [days, text] of [['0', `--days takes a positive whole number, got '0'`], ['900', '--days takes a whole number from 1 to 825']]) {
      const r = await zpNode('certs', 'init', '--out', out, '--days', days!)
      expect(r.code).toBe(2)
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toContain(text)
    }
    await expect(stat(out)).rejects.toThrow(/ENOENT/)
  })
})
