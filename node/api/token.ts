import { randomBytes, timingSafeEqual } from 'node:crypto'
import { dataPaths, readSecret, writeSecret } from '../datadir.ts'

/** The control API's bearer token: created once in `<data-dir>/api-token` (mode 0600). */
export async function loadOrCreateToken (dataDir: string): Promise<string> {
  const path = dataPaths(dataDir).token
  const existing = (await readSecret(path))?.toString('utf8').trim()
  if (existing != null && existing.length >= 32) return existing
  const token = randomBytes(32).toString('base64url')
  await writeSecret(path, token + '\n')
  return token
}

export function tokenMatches (expected: string, header: string | undefined): boolean {
  const given = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1]
  if (given == null) return false
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
