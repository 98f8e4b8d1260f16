import { createReadStream, type Stats } from 'node:fs'
import { link, mkdir, open, readdir, rm, stat, utimes, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BLOB_CHUNK_BYTES, DEFAULT_MAX_BLOB_BYTES } from '../../protocols/blob/constants.ts'
import type { BlobSink, BlobSource } from '../../protocols/blob/types.ts'
import { SHA256_HEX, type BlobRef } from '../../protocols/campaign/spec.ts'
import { BlobNotFoundError, BlobStoreError, BlobTooLargeError, fsReason } from './errors.ts'
import { checkRange, StoreReader } from './reader.ts'
import { StoreWriter } from './writer.ts'

export interface BlobStoreOptions {
  /** the largest blob stored, by put or by fetch (default DEFAULT_MAX_BLOB_BYTES) */
  maxBlobBytes?: number
}

/** A blob as the store lists it. */
export interface StoredBlob {
  hash: string
  size: number
  /** epoch ms it was last written, fetched or used (its file's mtime, which `touch` moves) */
  lastUsedAt: number
}

/** Told, while the blob cannot be removed, that a writer put it in place (`added`: the store lacked it). */
export type CommitHook = (blob: { hash: string, added: boolean }) => void

/** The extension Node needs to load a file as an ES module, whatever package.json says. */
const MODULE_EXTENSION = '.mjs'
const PREFIX = /^[0-9a-f]{2}$/

/**
 * Content-addressed blobs under one directory (`<data-dir>/blobs`): the blob
 * with sha256 `h` is the file `<dir>/<h[0..2]>/<h>`, mode 0600, and only ever
 * holds exactly the bytes that hash to `h` (written aside in `<dir>/tmp`,
 * linked into place once whole and checked). Names are not kept: a BlobRef's
 * name is the caller's. One store (one node) per directory: opening it clears
 * the temp files a crash left, and counts what it holds.
 *
 * A removal and a put or look-up of the same blob never interleave (a lock
 * per hash): whoever finds a blob present can rely on it until its holder
 * lets the garbage collector (gc.ts) see it unused.
 *
 * ES modules: a stored blob has no extension, and Node decides how to load a
 * file by its extension. `importablePath` adds a hard link `<h>.mjs` to the
 * same bytes, so the blob is stored once and `import()` loads it as ESM.
 */
export class BlobStore implements BlobSource, BlobSink {
  readonly dir: string
  readonly maxBlobBytes: number
  readonly #tmp: string
  readonly #usage = { blobs: 0, bytes: 0 }
  /** the last operation on each hash that has one in progress */
  readonly #locks = new Map<string, Promise<unknown>>()
  readonly #removed = new Set<(hash: string) => void>()
  #seq = 0

  private constructor (dir: string, maxBlobBytes: number) {
    this.dir = dir
    this.maxBlobBytes = maxBlobBytes
    this.#tmp = join(dir, 'tmp')
  }

  static async open (dir: string, opts: BlobStoreOptions = {}): Promise<BlobStore> {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 })
      await rm(join(dir, 'tmp'), { recursive: true, force: true })
      await mkdir(join(dir, 'tmp'), { mode: 0o700 })
    } catch (err) {
      throw new BlobStoreError(`cannot open the blob store in ${dir}: ${fsReason(err)}; check that the data dir is writable`)
    }
    const store = new BlobStore(dir, opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES)
    for await (const blob of store.list()) {
      store.#usage.blobs++
      store.#usage.bytes += blob.size
    }
    return store
  }

  /** Hears of every blob removed (a cache of paths drops it). */
  onRemove (listener: (hash: string) => void): void {
    this.#removed.add(listener)
  }

  /** How many blobs the store holds, and their bytes. */
  usage (): { blobs: number, bytes: number } {
    return { ...this.#usage }
  }

  /** Every blob held, in no particular order (a blob put or removed meanwhile may or may not be listed). */
  async * list (): AsyncGenerator<StoredBlob> {
    for (const prefix of await this.#readdir(this.dir)) {
      if (!PREFIX.test(prefix)) continue
      for (const name of await this.#readdir(join(this.dir, prefix))) {
        if (!SHA256_HEX.test(name) || !name.startsWith(prefix)) continue
        const info = await this.#stat(join(this.dir, prefix, name))
        if (info != null) yield { hash: name, size: info.size, lastUsedAt: info.mtimeMs }
      }
    }
  }

  /** Marks a blob used now (its lastUsedAt): the garbage collector keeps what was used within its retention. */
  async touch (hash: string): Promise<void> {
    const now = new Date()
    try {
      await utimes(this.path(hash), now, now)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BlobStoreError(`cannot mark blob ${hash} in ${this.dir} as used: ${fsReason(err)}`)
    }
  }

  /** Where the blob is kept (whether or not it is there yet): for ONNX Runtime and friends. */
  path (hash: string): string {
    if (!SHA256_HEX.test(hash)) throw new RangeError(`'${hash}' is not a sha256 hex digest (64 lower-case hex digits)`)
    return join(this.dir, hash.slice(0, 2), hash)
  }

  async has (hash: string): Promise<boolean> {
    return await this.size(hash) != null
  }

  /** The blob's size in bytes; undefined when the store does not hold it (or a removal of it is under way). */
  async size (hash: string): Promise<number | undefined> {
    const file = this.path(hash)
    return await this.#locked(hash, async () => (await this.#stat(file))?.size)
  }

  async putBytes (bytes: Uint8Array, name: string): Promise<BlobRef> {
    return await this.#ingest(name, [bytes])
  }

  /** Stores what `chunks` yields, hashing as it writes (never held in memory whole). */
  async putStream (chunks: AsyncIterable<Uint8Array>, name: string): Promise<BlobRef> {
    return await this.#ingest(name, chunks)
  }

  /** Copies a file in, hashing while it copies (the file is never held in memory whole). */
  async putFile (file: string, name: string, opts: { onCommit?: CommitHook } = {}): Promise<BlobRef> {
    let size: number
    try {
      const info = await stat(file)
      if (!info.isFile()) throw new BlobStoreError(`${file} is not a regular file; a blob is made from a file's bytes`)
      size = info.size
    } catch (err) {
      if (err instanceof BlobStoreError) throw err
      throw new BlobStoreError(`cannot read ${file}: ${fsReason(err)}`)
    }
    if (size > this.maxBlobBytes) {
      throw new BlobTooLargeError(`${file} is ${size} bytes, over the ${this.maxBlobBytes}-byte blob limit; raise maxBlobBytes or use a smaller file`, this.maxBlobBytes)
    }
    return await this.#ingest(name, createReadStream(file, { highWaterMark: BLOB_CHUNK_BYTES }), { readWhat: `cannot read ${file}`, onCommit: opts.onCommit })
  }

  /**
   * Stores bytes [start, end) of a blob held here as the blob `sliceHash`, as a
   * fetch of that range from a peer would (a slice of a data set is a blob).
   */
  async putSlice (hash: string, range: { start: number, end: number, hash: string }, name: string): Promise<BlobRef> {
    const reader = await this.#reader(hash)
    try {
      checkRange(hash, reader.size, range.start, range.end)
      return await this.#ingest(name, reader.chunks(range.start, range.end, BLOB_CHUNK_BYTES), { readWhat: `cannot read blob ${hash}`, expect: range.hash })
    } finally {
      await reader.close()
    }
  }

  async openReader (hash: string): Promise<StoreReader | undefined> {
    const file = this.path(hash)
    let fh: FileHandle
    try {
      fh = await open(file, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new BlobStoreError(`cannot read blob ${hash} in ${this.dir}: ${fsReason(err)}`)
    }
    try {
      return new StoreReader(hash, this.dir, fh, (await fh.stat()).size)
    } catch (err) {
      await fh.close().catch(() => {})
      throw new BlobStoreError(`cannot read blob ${hash} in ${this.dir}: ${fsReason(err)}`)
    }
  }

  /** Bytes [start, end) of a blob, in memory: for small ranges (headers, samples). */
  async readRange (hash: string, start: number, end: number): Promise<Uint8Array> {
    const reader = await this.#reader(hash)
    try {
      checkRange(hash, reader.size, start, end)
      const out = new Uint8Array(end - start)
      let at = 0
      for await (const chunk of reader.chunks(start, end, BLOB_CHUNK_BYTES)) {
        out.set(chunk, at)
        at += chunk.byteLength
      }
      return out
    } finally {
      await reader.close()
    }
  }

  /** A path `import()` loads as an ES module: a `.mjs` hard link to the blob, made once. */
  async importablePath (hash: string): Promise<string> {
    const file = this.path(hash)
    const importable = file + MODULE_EXTENSION
    await this.#locked(hash, async () => {
      try {
        await link(file, importable)
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT') throw new BlobNotFoundError(hash, this.dir)
        if (code !== 'EEXIST') throw new BlobStoreError(`cannot link blob ${hash} as an ES module in ${this.dir}: ${fsReason(err)}`)
      }
    })
    return importable
  }

  /**
   * Removes a blob and its .mjs link, unless `unless` (asked with no put or
   * look-up of the blob in between) says to keep it. Resolves with the size
   * of the blob removed; undefined when it was kept or not here.
   */
  async remove (hash: string, opts: { unless?: (blob: StoredBlob) => boolean } = {}): Promise<number | undefined> {
    const file = this.path(hash)
    return await this.#locked(hash, async () => {
      const info = await this.#stat(file)
      if (info != null && opts.unless?.({ hash, size: info.size, lastUsedAt: info.mtimeMs }) === true) return undefined
      try {
        await rm(file + MODULE_EXTENSION, { force: true })
        await rm(file, { force: true })
      } catch (err) {
        throw new BlobStoreError(`cannot remove blob ${hash} from ${this.dir}: ${fsReason(err)}`)
      }
      for (const listener of this.#removed) listener(hash)
      if (info == null) return undefined
      this.#usage.blobs--
      this.#usage.bytes -= info.size
      return info.size
    })
  }

  /** A temp file that becomes a blob when committed; `onCommit` hears of it then. */
  async createWriter (opts: { name: string, maxBytes?: number, onCommit?: CommitHook }): Promise<StoreWriter> {
    const maxBytes = Math.min(opts.maxBytes ?? this.maxBlobBytes, this.maxBlobBytes)
    return await StoreWriter.create({
      dir: this.dir,
      tmpPath: join(this.#tmp, `${process.pid}.${++this.#seq}`),
      install: async (tmpPath, hash, bytes) => await this.#install(tmpPath, hash, bytes, opts.onCommit)
    }, opts.name, maxBytes)
  }

  /** A link, not a rename: it fails on a blob already here, so the count stays true. */
  async #install (tmpPath: string, hash: string, bytes: number, onCommit?: CommitHook): Promise<string> {
    const path = this.path(hash)
    return await this.#locked(hash, async () => {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 })
      let added = true
      try {
        await link(tmpPath, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // the same bytes are here already: putting them again is a use of them
        added = false
        await this.touch(hash)
      }
      await rm(tmpPath, { force: true }).catch(() => {})
      if (added) {
        this.#usage.blobs++
        this.#usage.bytes += bytes
      }
      onCommit?.({ hash, added })
      return path
    })
  }

  /** Runs `fn` after every earlier operation on `hash` has finished. */
  async #locked<T> (hash: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#locks.get(hash) ?? Promise.resolve()).then(fn)
    const tail = run.catch(() => {})
    this.#locks.set(hash, tail)
    try {
      return await run
    } finally {
      if (this.#locks.get(hash) === tail) this.#locks.delete(hash)
    }
  }

  /** A blob file's stats; undefined when it is not there. */
  async #stat (file: string): Promise<Stats | undefined> {
    try {
      const info = await stat(file)
      return info.isFile() ? info : undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new BlobStoreError(`cannot look up ${file}: ${fsReason(err)}`)
    }
  }

  async #readdir (dir: string): Promise<string[]> {
    try {
      return await readdir(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw new BlobStoreError(`cannot list the blob store in ${dir}: ${fsReason(err)}`)
    }
  }

  async #reader (hash: string): Promise<StoreReader> {
    const reader = await this.openReader(hash)
    if (reader == null) throw new BlobNotFoundError(hash, this.dir)
    return reader
  }

  /** Writes `source` into a new blob; with `expect`, only if it hashes to that. */
  async #ingest (name: string, source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, opts: { readWhat?: string, expect?: string, onCommit?: CommitHook } = {}): Promise<BlobRef> {
    const { readWhat, expect } = opts
    const writer = await this.createWriter({ name, onCommit: opts.onCommit })
    try {
      try {
        for await (const chunk of source) await writer.write([chunk])
      } catch (err) {
        if (err instanceof BlobStoreError) throw err
        throw new BlobStoreError(`${readWhat ?? `cannot read blob '${name}'`}: ${fsReason(err)}`)
      }
      const hash = await writer.finish()
      if (expect != null && hash !== expect) {
        throw new BlobStoreError(`blob '${name}' hashes to ${hash}, not ${expect}: the source is corrupt or the expected hash is wrong; nothing was stored`)
      }
      await writer.commit()
      return { hash, size: writer.bytes, name }
    } finally {
      await writer.discard()
    }
  }
}
