import { createHash, type Hash } from 'node:crypto'
import { open, rm, type FileHandle } from 'node:fs/promises'
import type { BlobWriter } from '../../protocols/blob/types.ts'
import { BlobStoreError, BlobTooLargeError, fsReason, isNoSpace } from './errors.ts'

export interface WriterPlace {
  /** the store's directory, named in messages */
  dir: string
  /** the temp file to write; same file system as the store, so putting it in place is atomic */
  tmpPath: string
  /** puts the finished temp file in place as the blob `hash` (whether or not the store held it); resolves with its path */
  install: (tmpPath: string, hash: string, bytes: number) => Promise<string>
}

/**
 * One blob being written: bytes go to a temp file (mode 0600) while they are
 * hashed, and reach their final name only by a link after an fsync, so a
 * final name never holds part of a blob, not even after a crash. Any failure
 * removes the temp file before it is reported.
 */
export class StoreWriter implements BlobWriter {
  readonly #place: WriterPlace
  readonly #name: string
  readonly #maxBytes: number
  readonly #hash: Hash = createHash('sha256')
  #fh: FileHandle | undefined
  #bytes = 0
  #digest: string | undefined
  #state: 'writing' | 'finished' | 'committed' | 'discarded' = 'writing'

  private constructor (place: WriterPlace, name: string, maxBytes: number, fh: FileHandle) {
    this.#place = place
    this.#name = name
    this.#maxBytes = maxBytes
    this.#fh = fh
  }

  static async create (place: WriterPlace, name: string, maxBytes: number): Promise<StoreWriter> {
    let fh: FileHandle
    try {
      fh = await open(place.tmpPath, 'wx', 0o600)
    } catch (err) {
      await rm(place.tmpPath, { force: true }).catch(() => {})
      throw writeError(err, place.dir, name, 0)
    }
    return new StoreWriter(place, name, maxBytes, fh)
  }

  get bytes (): number {
    return this.#bytes
  }

  async write (chunks: readonly Uint8Array[]): Promise<void> {
    this.#expect('writing', 'write')
    let total = 0
    for (const c of chunks) total += c.byteLength
    if (this.#bytes + total > this.#maxBytes) {
      await this.discard()
      throw new BlobTooLargeError(`blob '${this.#name}' is over the ${this.#maxBytes}-byte limit (${this.#bytes + total} bytes so far); raise maxBlobBytes or use a smaller blob`, this.#maxBytes)
    }
    try {
      const written = writeAll(this.#fh!, chunks, this.#bytes)
      // hashing on this thread overlaps the write on libuv's pool
      for (const c of chunks) this.#hash.update(c)
      await written
    } catch (err) {
      await this.discard()
      throw writeError(err, this.#place.dir, this.#name, this.#bytes)
    }
    this.#bytes += total
  }

  async finish (): Promise<string> {
    this.#expect('writing', 'finish')
    try {
      await this.#fh!.sync()
      await this.#fh!.close()
      this.#fh = undefined
    } catch (err) {
      await this.discard()
      throw writeError(err, this.#place.dir, this.#name, this.#bytes)
    }
    this.#digest = this.#hash.digest('hex')
    this.#state = 'finished'
    return this.#digest
  }

  async commit (): Promise<string> {
    this.#expect('finished', 'commit')
    let path: string
    try {
      path = await this.#place.install(this.#place.tmpPath, this.#digest!, this.#bytes)
    } catch (err) {
      await this.discard()
      throw writeError(err, this.#place.dir, this.#name, this.#bytes)
    }
    this.#state = 'committed'
    return path
  }

  async discard (): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'discarded') return
    this.#state = 'discarded'
    await this.#fh?.close().catch(() => {})
    this.#fh = undefined
    await rm(this.#place.tmpPath, { force: true }).catch(() => {})
  }

  #expect (state: 'writing' | 'finished', what: string): void {
    if (this.#state !== state) throw new BlobStoreError(`cannot ${what} blob '${this.#name}': the writer is ${this.#state}`)
  }
}

/** writev until every byte is on the file: a write can be partial (a nearly full disk). */
async function writeAll (fh: FileHandle, chunks: readonly Uint8Array[], position: number): Promise<void> {
  let pending = chunks
  while (pending.length > 0) {
    const { bytesWritten } = await fh.writev(pending, position)
    if (bytesWritten === 0) throw new Error('the file system accepted no bytes')
    position += bytesWritten
    pending = skipBytes(pending, bytesWritten)
  }
}

function skipBytes (chunks: readonly Uint8Array[], n: number): readonly Uint8Array[] {
  let i = 0
  while (i < chunks.length && n >= chunks[i]!.byteLength) n -= chunks[i++]!.byteLength
  const rest = chunks.slice(i)
  if (n > 0 && rest.length > 0) rest[0] = rest[0]!.subarray(n)
  return rest
}

function writeError (err: unknown, dir: string, name: string, written: number): BlobStoreError {
  if (err instanceof BlobStoreError) return err
  if (isNoSpace(err)) {
    return new BlobStoreError(`no space left on the disk of ${dir} while writing blob '${name}' (${written} bytes written, none kept); ` +
      'free space there, or start the node with a --data-dir on a larger disk')
  }
  return new BlobStoreError(`cannot write blob '${name}' in ${dir}: ${fsReason(err)}`)
}
