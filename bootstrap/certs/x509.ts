import { createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { CertsInputError, type SubjectNames } from './names.ts'

// Certificates with @peculiar/x509 over Node's WebCrypto: ECDSA P-256 keys (what browsers, curl and Caddy all take),
// a CA that may sign leaves only, server and client leaves with the key usages TLS checks.

// the library's types name the DOM's Crypto, which is Node's webcrypto at run time
const provider = webcrypto as unknown as NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>
const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' }
const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' }
const ORG = 'ZP Mesh'

export interface Authority {
  cert: x509.X509Certificate
  key: webcrypto.CryptoKey
}

export interface IssuedPem {
  certPem: string
  keyPem: string
}

export interface Validity {
  notBefore: Date
  notAfter: Date
}

/** A positive serial of 128 random bits (RFC 5280 wants positive and at most 20 bytes). */
function serialNumber (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x7f) | 0x01
  return bytes.toString('hex')
}

async function keyPair (): Promise<webcrypto.CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify'])
}

async function keyPem (key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

/** A new CA; `label` tells this CA from another one made elsewhere (browsers keep CAs apart by their names). */
export async function createAuthority (label: string, validity: Validity): Promise<{ authority: Authority } & IssuedPem> {
  const keys = await keyPair()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [`ZP Mesh dashboard CA ${label}`] }, { O: [ORG] }],
    ...validity,
    signingAlgorithm: SIGNING_ALG,
    keys,
    extensions: [
      // pathLength 0: it signs the server and client certificates, never another CA
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, provider)
    ]
  }, provider)
  return { authority: { cert, key: keys.privateKey }, certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys.privateKey) }
}

/** A leaf signed by the CA: a server certificate for `names`, or a client certificate for `commonName`. */
export async function issueLeaf (authority: Authority, leaf: { kind: 'server' | 'client', commonName: string, names?: SubjectNames }, validity: Validity): Promise<IssuedPem> {
  const keys = await keyPair()
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([leaf.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, provider),
    await x509.AuthorityKeyIdentifierExtension.create(authority.cert, false, provider)
  ]
  if (leaf.names != null) {
    extensions.push(new x509.SubjectAlternativeNameExtension([
      ...leaf.names.dns.map(value => ({ type: 'dns' as const, value })),
      ...leaf.names.ips.map(value => ({ type: 'ip' as const, value }))
    ]))
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [leaf.commonName] }, { O: [ORG] }],
    issuer: authority.cert.subjectName,
    ...validity,
    signingAlgorithm: SIGNING_ALG,
    publicKey: keys.publicKey,
    signingKey: authority.key,
    extensions
  }, provider)
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys.privateKey) }
}

/** The CA read back from its PEM files, checked: a P-256 key that belongs to the certificate. */
export async function loadAuthority (certPem: string, keyPemText: string, paths: { cert: string, key: string }): Promise<Authority> {
  let cert: x509.X509Certificate
  try {
    cert = new x509.X509Certificate(certPem)
  } catch (err) {
    throw new CertsInputError(`${paths.cert} is not a PEM certificate (${(err as Error).message}); restore it from a backup, or make a new set with 'zp-node certs init --out NEWDIR'`)
  }
  let der: Buffer
  try {
    const key = createPrivateKey(keyPemText)
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not an ECDSA P-256 key')
    if (!Buffer.from(cert.publicKey.rawData).equals(createPublicKey(key).export({ format: 'der', type: 'spki' }))) {
      throw new CertsInputError(`${paths.key} is not the key of the CA in ${paths.cert}; restore the pair from a backup, or make a new set with 'zp-node certs init --out NEWDIR'`)
    }
    der = key.export({ format: 'der', type: 'pkcs8' })
  } catch (err) {
    if (err instanceof CertsInputError) throw err
    throw new CertsInputError(`${paths.key} is not a CA key made by zp-node certs (${(err as Error).message}); restore it from a backup, or make a new set with 'zp-node certs init --out NEWDIR'`)
  }
  return { cert, key: await webcrypto.subtle.importKey('pkcs8', der, KEY_ALG, false, ['sign']) }
}
