import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { writeAtomic, writeSecret } from '../../node/datadir.ts'
import { certPaths } from './layout.ts'
import { checkClientName, checkDays, CertsInputError, type SubjectNames } from './names.ts'
import { createAuthority, issueLeaf, loadAuthority, type Validity } from './x509.ts'

// Writing the certificate folder (laid out in layout.ts): keys with mode 0600, never over existing ones.

/** the CA outlives the leaves it signs, so a client added later still gets a full term */
const CA_DAYS = 3650
const DAY_MS = 86_400_000

export interface CertSet {
  /** the CA's subject and SHA-256 fingerprint, for people to compare what a browser shows */
  ca: { subject: string, fingerprint256: string, notAfter: string }
  server?: { names: SubjectNames, notAfter: string }
  clients: Array<{ name: string, notAfter: string }>
}

const exists = async (path: string): Promise<boolean> => await stat(path).then(() => true, () => false)

/** Leaves start a minute back, so that a clock a little behind on the other end accepts them at once. */
function leafValidity (days: number, now: Date): Validity {
  return { notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + checkDays(days) * DAY_MS) }
}

function describeCa (pem: string): CertSet['ca'] {
  const cert = new X509Certificate(pem)
  return { subject: cert.subject.replace(/\n/g, ', '), fingerprint256: cert.fingerprint256, notAfter: new Date(cert.validTo).toISOString() }
}

/** `certs init`: a new CA, the server certificate and the clients' certificates in DIR; refuses a DIR that holds a CA. */
export async function initCerts (dir: string, opts: { names: SubjectNames, clients: string[], days: number, now?: Date }): Promise<CertSet> {
  const paths = certPaths(dir)
  const now = opts.now ?? new Date()
  const validity = leafValidity(opts.days, now)
  for (const path of [paths.caKey, paths.caCert, paths.serverKey, paths.clients]) {
    if (await exists(path)) {
      throw new CertsInputError(`${dir} already holds certificates (${path}); init would replace its keys. Add a client with 'zp-node certs add-client NAME --out ${dir}', or give init a new --out folder`)
    }
  }
  const label = `${now.toISOString().slice(0, 10)} ${randomBytes(3).toString('hex')}`
  const ca = await createAuthority(label, { notBefore: validity.notBefore, notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS) })
  const server = await issueLeaf(ca.authority, { kind: 'server', commonName: opts.names.dns[0] ?? opts.names.ips[0]!, names: opts.names }, validity)
  await mkdir(paths.clients, { recursive: true, mode: 0o700 })
  await writeSecret(paths.caKey, ca.keyPem)
  await writeSecret(paths.serverKey, server.keyPem)
  await writeAtomic(paths.serverCert, server.certPem)
  for (const name of opts.clients) {
    const client = await issueLeaf(ca.authority, { kind: 'client', commonName: checkClientName(name) }, validity)
    await writeSecret(paths.clientKey(name), client.keyPem)
    await writeAtomic(paths.clientCert(name), client.certPem)
  }
  // ca.crt last: a folder interrupted half-way holds no CA that add-client would take for a whole set
  await writeAtomic(paths.caCert, ca.certPem)
  return {
    ca: describeCa(ca.certPem),
    server: { names: opts.names, notAfter: validity.notAfter.toISOString() },
    clients: opts.clients.map(name => ({ name, notAfter: validity.notAfter.toISOString() }))
  }
}

async function readPem (path: string, what: string, dir: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new CertsInputError(`cannot read the ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run as the user that ran 'zp-node certs init --out ${dir}', or make a new set with certs init into a new folder`)
  }
}

/** `certs add-client`: one more client certificate signed by the CA in DIR; the CA and the others stay as they are. */
export async function addClient (dir: string, name: string, opts: { days: number, now?: Date }): Promise<CertSet> {
  const paths = certPaths(dir)
  checkClientName(name)
  const caPem = await readPem(paths.caCert, 'CA certificate', dir)
  const authority = await loadAuthority(caPem, await readPem(paths.caKey, 'CA key', dir), { cert: paths.caCert, key: paths.caKey })
  if (await exists(paths.clientCert(name)) || await exists(paths.clientKey(name))) {
    throw new CertsInputError(`${dir} already has a client '${name}' (${paths.clientCert(name)}); pick another name, or delete its two files first to replace it`)
  }
  const validity = leafValidity(opts.days, opts.now ?? new Date())
  if (validity.notAfter > authority.cert.notAfter) {
    throw new CertsInputError(`the CA in ${dir} expires on ${authority.cert.notAfter.toISOString().slice(0, 10)}, before a client for --days ${opts.days} would; give fewer --days, or make a new set with certs init`)
  }
  const client = await issueLeaf(authority, { kind: 'client', commonName: name }, validity)
  await mkdir(paths.clients, { recursive: true, mode: 0o700 })
  await writeSecret(paths.clientKey(name), client.keyPem)
  await writeAtomic(paths.clientCert(name), client.certPem)
  return { ca: describeCa(caPem), clients: [{ name, notAfter: validity.notAfter.toISOString() }] }
}
