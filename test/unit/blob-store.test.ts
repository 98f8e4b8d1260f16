import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { BlobAccess } from '../../node/blobs/access.ts'
import { BlobStore } from '../../node/blobs/store.ts'
import { fetchBlob } from '../../protocols/blob/client.ts'
import { handleBlobStream } from '../../protocols/blob/handler.ts'
import { silentLogger } from '../../node/logger.ts'
import { streamPair } from '@libp2p/utils'
import { tempDir } from '../helpers.ts'

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

let dir: { path: string, remove: () => Promise<void> }
let store: BlobStore
beforeEach(async () => {
  dir = await tempDir('zp-blob-store-')
  store = await BlobStore.open(join(dir.path, 'blobs'))
})
afterEach(async () => { await dir.remove() })

const tmpFiles = async (s: BlobStore): Promise<string[]> => await readdir(join(s.dir, 'tmp'))

describe('BlobStore', () => {
  it('keeps a blob at <dir>/<first 2 hex>/<hash>, mode 0600, and reads it back whole and in ranges', async () => {
    const bytes = randomBytes(600 * 1024)
    const ref = await store.putBytes(bytes, 'model.onnx')
    expect(ref).toEqual({ hash: sha256(bytes), size: bytes.length, name: 'model.onnx' })
    expect(store.path(ref.hash)).toBe(join(store.dir, ref.hash.slice(0, 2), ref.hash))
    expect(Buffer.compare(await readFile(store.path(ref.hash)), bytes)).toBe(0)
    expect((await stat(store.path(ref.hash))).mode & 0o777).toBe(0o600)
    expect(await store.has(ref.hash)).toBe(true)
    expect(await store.size(ref.hash)).toBe(bytes.length)
    expect(Buffer.compare(await store.readRange(ref.hash, 300_000, 600_001), bytes.subarray(300_000, 600_001))).toBe(0)
    expect((await store.readRange(ref.hash, 5, 5)).byteLength).toBe(0)
    await expect(store.readRange(ref.hash, 0, bytes.length + 1)).rejects.toThrow(/outside blob/)
    const reader = (await store.openReader(ref.hash))!
    const pieces: Uint8Array[] = []
    for await (const c of reader.chunks(0, bytes.length, 256 * 1024)) pieces.push(c)
    await reader.close()
    expect(pieces.map(p => p.byteLength)).toEqual([262144, 262144, 90112])
    expect(await tmpFiles(store)).toEqual([])
  })

  it('says a blob is absent, and refuses a "hash" that is not one (no path tricks)', async () => {
    const absent = sha256(Buffer.from('absent'))
    expect(await store.has(absent)).toBe(false)
    expect(await store.size(absent)).toBeUndefined()
    expect(await store.openReader(absent)).toBeUndefined()
    await expect(store.readRange(absent, 0, 1)).rejects.toMatchObject({ name: 'BlobNotFoundError', message: expect.stringContaining(absent) })
    expect(() => store.path('../../etc/passwd')).toThrow(/not a sha256/)
    expect(() => store.path(absent.toUpperCase())).toThrow(/not a sha256/)
  })

  it('copies a file in while hashing it', async () => {
    const file = join(dir.path, 'data.csv')
    const bytes = randomBytes(5 * 1024 * 1024 + 3)
    await writeFile(file, bytes)
    const ref = await store.putFile(file, 'data.csv')
    expect(ref).toEqual({ hash: sha256(bytes), size: bytes.length, name: 'data.csv' })
    expect(Buffer.compare(await readFile(store.path(ref.hash)), bytes)).toBe(0)
    await expect(store.putFile(join(dir.path, 'nope.csv'), 'nope.csv')).rejects.toMatchObject({ name: 'BlobStoreError', message: expect.stringMatching(/nope\.csv.*ENOENT/) })
    await expect(store.putFile(dir.path, 'a dir')).rejects.toMatchObject({ name: 'BlobStoreError', message: expect.stringContaining('not a regular file') })
  })

  it('enforces maxBlobBytes on put, and leaves nothing behind', async () => {
    const small = await BlobStore.open(join(dir.path, 'small'), { maxBlobBytes: 1000 })
    const file = join(dir.path, 'big.bin')
    await writeFile(file, randomBytes(1001))
    await expect(small.putBytes(randomBytes(1001), 'big')).rejects.toMatchObject({ name: 'BlobTooLargeError', limit: 1000 })
    await expect(small.putFile(file, 'big.bin')).rejects.toMatchObject({ name: 'BlobTooLargeError', message: expect.stringContaining('1001 bytes') })
    expect(await tmpFiles(small)).toEqual([])
    expect((await readdir(small.dir)).sort()).toEqual(['tmp'])
    expect((await small.putBytes(randomBytes(1000), 'ok')).size).toBe(1000)
  })

  it('a blob is under its final name only once whole and checked: a failed or abandoned write leaves nothing', async () => {
    const bytes = randomBytes(100_000)
    const hash = sha256(bytes)
    const writer = await store.createWriter({ name: 'w' })
    await writer.write([bytes.subarray(0, 50_000)])
    await writer.write([bytes.subarray(50_000)])
    expect(await store.has(hash)).toBe(false)
    expect(await writer.finish()).toBe(hash)
    expect(await store.has(hash)).toBe(false)
    await writer.commit()
    expect(await store.has(hash)).toBe(true)

    const abandoned = await store.createWriter({ name: 'a' })
    await abandoned.write([randomBytes(1000)])
    await abandoned.discard()
    const overLimit = await store.createWriter({ name: 'o', maxBytes: 10 })
    await expect(overLimit.write([randomBytes(11)])).rejects.toMatchObject({ name: 'BlobTooLargeError' })
    await expect(overLimit.write([randomBytes(1)])).rejects.toMatchObject({ name: 'BlobStoreError', message: expect.stringContaining('discarded') })
    expect(await tmpFiles(store)).toEqual([])
  })

  it('clears the temp files a crash left when it opens', async () => {
    await writeFile(join(store.dir, 'tmp', '1234.1'), 'half a blob')
    const reopened = await BlobStore.open(store.dir)
    expect(await tmpFiles(reopened)).toEqual([])
  })

  it('stores a slice of a blob as a blob, only if it has the expected hash', async () => {
    const bytes = randomBytes(10_000)
    const ref = await store.putBytes(bytes, 'rows.csv')
    const slice = bytes.subarray(100, 4000)
    const sliceRef = await store.putSlice(ref.hash, { start: 100, end: 4000, hash: sha256(slice) }, 'rows 1-9')
    expect(sliceRef).toEqual({ hash: sha256(slice), size: 3900, name: 'rows 1-9' })
    const wrong = sha256(Buffer.from('other'))
    await expect(store.putSlice(ref.hash, { start: 0, end: 10, hash: wrong }, 'bad')).rejects.toMatchObject({ name: 'BlobStoreError', message: expect.stringContaining(wrong) })
    expect(await store.has(wrong)).toBe(false)
    expect(await store.has(sha256(bytes.subarray(0, 10)))).toBe(false)
    expect(await tmpFiles(store)).toEqual([])
  })

  it('makes a module blob importable through a .mjs link to the same bytes, and removes both', async () => {
    const source = 'export function run (shard) { return shard * 2 }\nexport const kind = "module"\n'
    const ref = await store.putBytes(Buffer.from(source), 'sim.js')
    const importable = await store.importablePath(ref.hash)
    expect(importable).toBe(store.path(ref.hash) + '.mjs')
    expect(await store.importablePath(ref.hash)).toBe(importable)
    expect((await stat(importable)).ino).toBe((await stat(store.path(ref.hash))).ino)
    const mod = await import(pathToFileURL(importable).href) as { run: (n: number) => number, kind: string }
    expect(mod.run(21)).toBe(42)
    expect(mod.kind).toBe('module')
    await store.remove(ref.hash)
    expect(await store.has(ref.hash)).toBe(false)
    await expect(stat(importable)).rejects.toMatchObject({ code: 'ENOENT' })
    await expect(store.importablePath(ref.hash)).rejects.toMatchObject({ name: 'BlobNotFoundError' })
  })

  it('counts its blobs and bytes: a put of bytes it holds adds nothing but marks them used; reopened, it counts them again', async () => {
    expect(store.usage()).toEqual({ blobs: 0, bytes: 0 })
    const a = await store.putBytes(randomBytes(1000), 'a')
    const b = await store.putBytes(randomBytes(500), 'b')
    await utimes(store.path(a.hash), new Date(1000), new Date(1000))
    const commits: Array<{ hash: string, added: boolean }> = []
    const file = join(dir.path, 'again.bin')
    await writeFile(file, await store.readRange(a.hash, 0, 1000))
    await store.putFile(file, 'again', { onCommit: (c) => { commits.push(c) } })
    expect(commits).toEqual([{ hash: a.hash, added: false }])
    expect(store.usage()).toEqual({ blobs: 2, bytes: 1500 })
    const listed = []
    for await (const blob of store.list()) listed.push(blob)
    expect(listed.map(l => [l.hash, l.size]).sort()).toEqual([[a.hash, 1000], [b.hash, 500]].sort())
    expect(listed.find(l => l.hash === a.hash)!.lastUsedAt).toBeGreaterThan(Date.now() - 60_000)
    expect((await BlobStore.open(store.dir)).usage()).toEqual({ blobs: 2, bytes: 1500 })
    expect(await store.remove(b.hash)).toBe(500)
    expect(await store.remove(b.hash)).toBeUndefined()
    expect(store.usage()).toEqual({ blobs: 1, bytes: 1000 })
  })

  it('removes a blob only if `unless`, asked at the time, does not keep it', async () => {
    const ref = await store.putBytes(randomBytes(10), 'x')
    await utimes(store.path(ref.hash), new Date(5000), new Date(5000))
    const seen: unknown[] = []
    expect(await store.remove(ref.hash, { unless: (blob) => { seen.push(blob); return true } })).toBeUndefined()
    expect(seen).toEqual([{ hash: ref.hash, size: 10, lastUsedAt: 5000 }])
    await store.touch(ref.hash)
    expect(await store.remove(ref.hash, { unless: (blob) => blob.lastUsedAt > 5000 })).toBeUndefined()
    expect(await store.has(ref.hash)).toBe(true)
    expect(await store.remove(ref.hash, { unless: () => false })).toBe(10)
    await store.touch(ref.hash)
  })
})

describe('BlobAccess', () => {
  it('allows granted blobs per scope until every scope granting them is revoked; trusted peers always', () => {
    const access = new BlobAccess(peer => peer === 'coordinator')
    access.grant('c1', 'w1', ['h1', 'h2'])
    access.grant('c2', 'w1', ['h2'])
    access.grant('c1', 'w2', ['h1'])
    expect(access.allows('w1', 'h1')).toBe(true)
    expect(access.allows('w2', 'h2')).toBe(false)
    expect(access.allows('coordinator', 'anything')).toBe(true)
    access.revoke('c1', 'w2')
    expect(access.allows('w2', 'h1')).toBe(false)
    expect(access.allows('w1', 'h1')).toBe(true)
    access.revoke('c1')
    expect(access.allows('w1', 'h1')).toBe(false)
    expect(access.allows('w1', 'h2')).toBe(true)
    access.revoke('c2')
    expect(access.allows('w1', 'h2')).toBe(false)
  })

  it('lists what is granted; a grant made for a time ends by itself', () => {
    let now = 1000
    const access = new BlobAccess(() => false, () => now)
    access.grant('c1', 'w1', ['h1'])
    access.grant('result:h2', 'coordinator', ['h2'], 60_000)
    access.grant('result:h1', 'coordinator', ['h1'], 60_000)
    expect(access.granted()).toEqual(new Set(['h1', 'h2']))
    now += 60_000
    expect(access.allows('coordinator', 'h2')).toBe(false)
    expect(access.allows('w1', 'h1')).toBe(true)
    expect(access.granted()).toEqual(new Set(['h1']))
    access.revoke('c1')
    expect(access.granted()).toEqual(new Set())
  })
})

/** A 1 MiB tmpfs, when this process may mount one (root, as in CI); else undefined. */
async function mountTmpfs (): Promise<{ path: string, unmount: () => Promise<void> } | undefined> {
  if (process.getuid?.() !== 0) return undefined
  const path = await mkdtemp(join(tmpdir(), 'zp-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', path], { stdio: 'pipe' })
  } catch {
    await rm(path, { recursive: true, force: true })
    return undefined
  }
  return {
    path,
    unmount: async () => {
      execFileSync('umount', [path], { stdio: 'pipe' })
      await rm(path, { recursive: true, force: true })
    }
  }
}

const tmpfs = await mountTmpfs()
afterAll(async () => { await tmpfs?.unmount() })

describe(tmpfs != null ? 'a full disk (a real 1 MiB tmpfs)' : 'a full disk (injected ENOSPC: cannot mount a tmpfs here, not root)', () => {
  /** A store on the small tmpfs, or a store whose file writes fail with ENOSPC after `budget` bytes. */
  async function fullStore (): Promise<{ store: BlobStore, restore: () => void }> {
    if (tmpfs != null) {
      const where = join(tmpfs.path, 'data', 'blobs')
      await rm(join(tmpfs.path, 'data'), { recursive: true, force: true })
      await mkdir(where, { recursive: true })
      return { store: await BlobStore.open(where), restore: () => {} }
    }
    const probe = await open(join(dir.path, 'probe'), 'w')
    const proto = Object.getPrototypeOf(probe) as { writev: (buffers: Uint8Array[], ...rest: unknown[]) => Promise<unknown> }
    await probe.close()
    const writev = proto.writev
    let budget = 1024 * 1024
    proto.writev = async function (this: unknown, buffers: Uint8Array[], ...rest: unknown[]) {
      const total = buffers.reduce((n, b) => n + b.byteLength, 0)
      if (total > budget) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
      budget -= total
      return await writev.call(this, buffers, ...rest)
    }
    return { store: await BlobStore.open(join(dir.path, 'full')), restore: () => { proto.writev = writev } }
  }

  it('a put is a BlobStoreError naming the data dir and the fix, and leaves no partial file', async () => {
    const { store: full, restore } = await fullStore()
    try {
      const err = await full.putBytes(randomBytes(2 * 1024 * 1024), 'big.onnx').catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'BlobStoreError', message: expect.stringContaining(full.dir) })
      expect((err as Error).message).toMatch(/no space left.*big\.onnx.*--data-dir/)
      expect(await tmpFiles(full)).toEqual([])
      // the space is back: a blob that fits goes in
      expect((await full.putBytes(randomBytes(100 * 1024), 'small')).size).toBe(100 * 1024)
    } finally {
      restore()
    }
  })

  it('a fetch into it fails the same way, with nothing stored', async () => {
    const ref = await store.putBytes(randomBytes(2 * 1024 * 1024), 'data.bin')
    const { store: full, restore } = await fullStore()
    try {
      const [client, server] = await streamPair()
      void handleBlobStream(server, 'peer-A', { source: store, authorize: () => true, log: silentLogger() })
      const err = await fetchBlob(async () => client, { peer: 'peer-B', ...ref, maxBytes: 1 << 30 }, full).catch((e: unknown) => e)
      expect(err).toMatchObject({ name: 'BlobStoreError', message: expect.stringMatching(/no space left/) })
      expect(await full.has(ref.hash)).toBe(false)
      expect(await tmpFiles(full)).toEqual([])
    } finally {
      restore()
    }
  })
})
