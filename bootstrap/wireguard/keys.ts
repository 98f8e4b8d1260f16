import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto'

// WireGuard keys are raw Curve25519 keys in standard base64: the private key is the 32-byte scalar (clamped,
// as `wg genkey` writes it), the public key the 32-byte u-coordinate (what `wg pubkey` prints).

// a raw X25519 private key is these bytes away from PKCS#8 DER (RFC 8410), which Node imports
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')

export interface KeyPair {
  privateKey: string
  publicKey: string
}

export function generateKeyPair (): KeyPair {
  const { privateKey } = generateKeyPairSync('x25519')
  // OpenSSL stores the scalar clamped, so this is byte-for-byte the format wg genkey writes
  const privateText = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64')
  return { privateKey: privateText, publicKey: publicKeyOf(privateText) }
}

/** `wg pubkey`: the public key of a base64 private key. */
export function publicKeyOf (privateKey: string): string {
  const d = Buffer.from(privateKey, 'base64')
  if (d.length !== 32) throw new Error('a WireGuard private key is 32 bytes in base64 (44 characters)')
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, d]), format: 'der', type: 'pkcs8' })
  return Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url').toString('base64')
}

/** `wg genpsk`: 32 random bytes in base64. */
export function generatePresharedKey (): string {
  return randomBytes(32).toString('base64')
}

/** A WireGuard key as read back from a file: 44 base64 characters of 32 bytes. */
export function isWireguardKey (text: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(text) && Buffer.from(text, 'base64').length === 32
}
