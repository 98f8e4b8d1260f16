import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { generateKey } from '@libp2p/pnet'
import { writeSecret } from './datadir.ts'

const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'
const KEY_HEX = /^[0-9a-f]{64}$/i

export class PskError extends Error {
  override name = 'PskError'
}

/** A --psk file that cannot be read or is not a swarm key: bad input, so the CLI exits 2. */
export class PskFileError extends PskError {
  override name = 'PskFileError'
}

export interface Psk {
  /** the swarm key file's bytes, as @libp2p/pnet takes them */
  bytes: Uint8Array
  /** first 16 hex of SHA-256 of the key: safe to log and compare between machines */
  fingerprint: string
}

/** `zp-node psk generate FILE`: a new 256-bit swarm key in libp2p's format, mode 0600. */
export async function generatePskFile (path: string, opts: { force?: boolean } = {}): Promise<Psk> {
  if (opts.force !== true) {
    const exists = await stat(path).then(() => true, () => false)
    if (exists) throw new PskError(`${path} already exists; pass --force to replace it (every node of the mesh then needs the new key)`)
  }
  const bytes = new Uint8Array(HEADER.length + 64)
  generateKey(bytes)
  await writeSecret(path, bytes)
  return { bytes, fingerprint: fingerprintOf(bytes) }
}

export async function loadPsk (path: string): Promise<Psk> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new PskFileError(`cannot read pre-shared key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create one with: zp-node psk generate ${path}`)
  }
  return parsePsk(text, path)
}

/**
 * `--psk-env VAR`: the key file's text in an environment variable, as a
 * Kubernetes Secret reaches a container (env valueFrom secretKeyRef).
 */
export function loadPskEnv (name: string, env: NodeJS.ProcessEnv = process.env): Psk {
  const text = env[name]
  if (text == null || text === '') throw new PskFileError(`--psk-env ${name}: the environment variable ${name} is not set; set it to the text of a key file (zp-node psk generate FILE)`)
  return parsePsk(text, `the environment variable ${name}`)
}

function parsePsk (text: string, source: string): Psk {
  const key = text.startsWith(HEADER) ? text.slice(HEADER.length).trim() : ''
  if (!KEY_HEX.test(key)) {
    throw new PskFileError(`${source} is not a libp2p swarm key (expected "/key/swarm/psk/1.0.0/", "/base16/" and 64 hex digits); create one with: zp-node psk generate FILE`)
  }
  const bytes = new TextEncoder().encode(HEADER + key)
  return { bytes, fingerprint: fingerprintOf(bytes) }
}

function fingerprintOf (bytes: Uint8Array): string {
  const key = new TextDecoder().decode(bytes).slice(HEADER.length).trim().toLowerCase()
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}
