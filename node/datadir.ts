import { readFileSync, rmSync } from 'node:fs'
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** `--data-dir`, else `$ZP_DATA_DIR`, else `~/.zp`. */
export function resolveDataDir (flag?: string): string {
  return resolve(flag ?? process.env.ZP_DATA_DIR ?? join(homedir(), '.zp'))
}

export function dataPaths (dataDir: string): {
  identity: string, token: string, nodeInfo: string, db: string, log: string, runs: string, blobs: string
} {
  return {
    identity: join(dataDir, 'identity.key'),
    token: join(dataDir, 'api-token'),
    nodeInfo: join(dataDir, 'node.json'),
    db: join(dataDir, 'db'),
    log: join(dataDir, 'logs', 'node.log'),
    runs: join(dataDir, 'runs'),
    blobs: join(dataDir, 'blobs')
  }
}

export async function ensureDataDir (dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
}

/** Writes a file only its owner may read (keys, tokens), tightening an existing one. */
export async function writeSecret (path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data, { mode: 0o600 })
  await chmod(path, 0o600)
}

/** Reads a secret, fixing permissions that are too open; undefined when absent. */
export async function readSecret (path: string): Promise<Buffer | undefined> {
  let info
  try {
    info = await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  if ((info.mode & 0o077) !== 0) await chmod(path, 0o600)
  return await readFile(path)
}

/** Replaces a file atomically (write aside, then rename), so readers never see half of it. */
export async function writeAtomic (path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, data)
  await rename(tmp, path)
}

/** What a running node publishes about itself in `<data-dir>/node.json`. */
export interface NodeInfo {
  peerId: string
  name: string
  multiaddrs: string[]
  api: string | null
  /** the --metrics listener's URL (token-free /metrics), if any */
  metrics?: string | null
  pid: number
  startedAt: string
  version: string
}

export async function writeNodeInfo (dataDir: string, info: NodeInfo): Promise<void> {
  await writeAtomic(dataPaths(dataDir).nodeInfo, JSON.stringify(info, null, 2) + '\n')
}

export async function readNodeInfo (dataDir: string): Promise<NodeInfo | undefined> {
  try {
    return JSON.parse(await readFile(dataPaths(dataDir).nodeInfo, 'utf8')) as NodeInfo
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Removes node.json if this process wrote it (a node started since on the same data dir keeps its own). */
export async function removeNodeInfo (dataDir: string): Promise<void> {
  const info = await readNodeInfo(dataDir).catch(() => undefined)
  if (info?.pid === process.pid) await rm(dataPaths(dataDir).nodeInfo, { force: true })
}

/** removeNodeInfo, for an exit that cannot wait. */
export function removeNodeInfoSync (dataDir: string): void {
  try {
    const info = JSON.parse(readFileSync(dataPaths(dataDir).nodeInfo, 'utf8')) as Partial<NodeInfo>
    if (info.pid === process.pid) rmSync(dataPaths(dataDir).nodeInfo, { force: true })
  } catch {
    // absent or unreadable: nothing of ours to remove
  }
}
