import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { dataPaths, ensureDataDir, readSecret, writeSecret } from './datadir.ts'

export class IdentityError extends Error {
  override name = 'IdentityError'
}

/**
 * The node's Ed25519 identity: created on first start, then kept in
 * `<data-dir>/identity.key` (mode 0600). Its public key is the peer ID, so
 * keeping the file keeps the node's name in the mesh across restarts.
 */
export async function loadOrCreateIdentity (dataDir: string): Promise<{ key: PrivateKey, created: boolean }> {
  await ensureDataDir(dataDir)
  const path = dataPaths(dataDir).identity
  const bytes = await readSecret(path)
  if (bytes != null) {
    try {
      const key = privateKeyFromProtobuf(bytes)
      if (key.type !== 'Ed25519') throw new Error(`expected an Ed25519 key, found ${key.type}`)
      return { key, created: false }
    } catch (err) {
      throw new IdentityError(`identity key ${path} is unreadable (${(err as Error).message}); move it away to create a new identity (the peer ID will change)`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  await writeSecret(path, privateKeyToProtobuf(key))
  return { key, created: true }
}

export function peerIdOf (key: PrivateKey): string {
  return peerIdFromPrivateKey(key).toString()
}
