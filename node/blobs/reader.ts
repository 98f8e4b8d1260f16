import type { FileHandle } from 'node:fs/promises'
import type { BlobReader } from '../../protocols/blob/types.ts'
import { BlobStoreError } from './errors.ts'

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

export function checkRange (hash: string, size: number, start: number, end: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > size) {
    throw new RangeError(`range [${start}, ${end}) is outside blob ${hash} of ${size} bytes`)
  }
}
