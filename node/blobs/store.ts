import { createReadStream } from 'node:fs'
import { link, mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { BLOB_CHUNK_BYTES, DEFAULT_MAX_BLOB_BYTES } from '../../protocols/blob/constants.ts'
import type { BlobReader, BlobSink, BlobSource } from '../../protocols/blob/types.ts'
import { SHA256_HEX, type BlobRef } from '../../protocols/campaign/spec.ts'
import { BlobNotFoundError, BlobStoreError, BlobTooLargeError, fsReason } from './errors.ts'
import { StoreWriter } from './writer.ts'

export interface BlobStoreOptions {
  /** the largest blob stored, by put or by fetch (default DEFAULT_MAX_BLOB_BYTES) */
  maxBlobBytes?: number
}

/** The extension Node needs to load a file as an ES module, whatever package.json says. */
const MODULE_EXTENSION = '.mjs'

/**
 * Content-addressed blobs under one directory (`<data-dir>/blobs`): the blob
 * with sha256 `h` is the file `<dir>/<h[0..2]>/<h>`, mode 0600, and only ever
 * holds exactly the bytes that hash to `h` (written aside in `<dir>/tmp`,
 * renamed into place once whole and checked). Names are not kept: a BlobRef's
 * name is the caller's. One store (one node) per directory: opening it clears
 * the temp files a crash left.
 *
 * ES modules: a stored blob has no extension, and Node decides how to load a
 * file by its extension. `importablePath` adds a hard link `<h>.mjs` to the
 * same bytes, so the blob is stored once and `import()` loads it as ESM.
 */
export class BlobStore implements BlobSource, BlobSink {
  readonly dir: string
  readonly maxBlobBytes: number
  readonly #tmp: string
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
    return new BlobStore(dir, opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES)
  }

  /** Where the blob is kept (whether or not it is there yet): for ONNX Runtime and friends. */
  path (hash: string): string {
    if (!SHA256_HEX.test(hash)) throw new RangeError(`'${hash}' is not a sha256 hex digest (64 lower-case hex digits)`)
    return join(this.dir, hash.slice(0, 2), hash)
  }

  async has (hash: string): Promise<boolean> {
    return await this.size(hash) != null
  }

  /** The blob's size in bytes; undefined when the store does not hold it. */
  async size (hash: string): Promise<number | undefined> {
    try {
      const info = await stat(this.path(hash))
      return info.isFile() ? info.size : undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw new BlobStoreError(`cannot look up blob ${hash} in ${this.dir}: ${fsReason(err)}`)
    }
  }

  async putBytes (bytes: Uint8Array, name: string): Promise<BlobRef> {
    return await this.#ingest(name, [bytes])
  }

  /** Stores what `chunks` yields, hashing as it writes (never held in memory whole). */
  async putStream (chunks: AsyncIterable<Uint8Array>, name: string): Promise<BlobRef> {
    return await this.#ingest(name, chunks)
  }

  /** Copies a file in, hashing while it copies (the file is never held in memory whole). */
  async putFile (file: string, name: string): Promise<BlobRef> {
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
    return await this.#ingest(name, createReadStream(file, { highWaterMark: BLOB_CHUNK_BYTES }), `cannot read ${file}`)
  }

  /**
   * Stores bytes [start, end) of a blob held here as the blob `sliceHash`, as a
   * fetch of that range from a peer would (a slice of a data set is a blob).
   */
  async putSlice (hash: string, range: { start: number, end: number, hash: string }, name: string): Promise<BlobRef> {
    const reader = await this.#reader(hash)
    try {
      checkRange(hash, reader.size, range.start, range.end)
      return await this.#ingest(name, reader.chunks(range.start, range.end, BLOB_CHUNK_BYTES), `cannot read blob ${hash}`, range.hash)
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
    try {
      await link(file, importable)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw new BlobNotFoundError(hash, this.dir)
      if (code !== 'EEXIST') throw new BlobStoreError(`cannot link blob ${hash} as an ES module in ${this.dir}: ${fsReason(err)}`)
    }
    return importable
  }

  async remove (hash: string): Promise<void> {
    const file = this.path(hash)
    await rm(file + MODULE_EXTENSION, { force: true })
    await rm(file, { force: true })
  }

  async createWriter (opts: { name: string, maxBytes?: number }): Promise<StoreWriter> {
    const maxBytes = Math.min(opts.maxBytes ?? this.maxBlobBytes, this.maxBlobBytes)
    return await StoreWriter.create({
      dir: this.dir,
      tmpPath: join(this.#tmp, `${process.pid}.${++this.#seq}`),
      finalPath: (hash) => this.path(hash)
    }, opts.name, maxBytes)
  }

  async #reader (hash: string): Promise<StoreReader> {
    const reader = await this.openReader(hash)
    if (reader == null) throw new BlobNotFoundError(hash, this.dir)
    return reader
  }

  /** Writes `source` into a new blob; with `expect`, only if it hashes to that. */
  async #ingest (name: string, source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, readWhat?: string, expect?: string): Promise<BlobRef> {
    const writer = await this.createWriter({ name })
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

/** An open blob: reads keep working on these bytes even if the blob is removed meanwhile. */
export class StoreReader implements BlobReader {
  readonly size: number
  readonly #hash: string
  readonly #dir: string
  readonly #fh: FileHandle

  constructor (hash: string, dir: string, fh: FileHandle, size: number) {
    this.#hash = hash
    this.#dir = dir
    this.#fh = fh
    this.size = size
  }

  async * chunks (start: number, end: number, chunkBytes: number): AsyncGenerator<Uint8Array> {
    for (let pos = start; pos < end;) {
      const n = Math.min(chunkBytes, end - pos)
      // a fresh buffer each time: the caller may keep it (a stream queues it unsent)
      const buf = Buffer.allocUnsafeSlow(n)
      const { bytesRead } = await this.#fh.read(buf, 0, n, pos)
      if (bytesRead === 0) {
        throw new BlobStoreError(`blob ${this.#hash} in ${this.#dir} ended at byte ${pos} of the ${this.size} it had when opened: something changed it in place`)
      }
      yield bytesRead === n ? buf : buf.subarray(0, bytesRead)
      pos += bytesRead
    }
  }

  async close (): Promise<void> {
    await this.#fh.close()
  }
}

function checkRange (hash: string, size: number, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size) {
    throw new RangeError(`range [${start}, ${end}) is outside blob ${hash} of ${size} bytes`)
  }
}
