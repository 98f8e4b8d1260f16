import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { BlobCount, BlobGc } from './gc.ts'
import type { BlobStore, CommitHook } from './store.ts'
import type { StoreWriter } from './writer.ts'

/**
 * The blobs one submit stores. Each is held from the moment it is in place
 * until `release`, so the collector cannot take a campaign's files before its
 * record names them. A refused submit calls `discard`: the blobs it added
 * (not those the store held already) go again unless something else
 * references them meanwhile (another campaign, a submit of the same file),
 * which leaves the store as it was.
 */
export class Intake {
  readonly #store: Pick<BlobStore, 'createWriter' | 'putFile'>
  readonly #gc: Pick<BlobGc, 'hold' | 'removeUnreferenced'>
  readonly #added = new Set<string>()
  readonly #releases: Array<() => void> = []

  constructor (store: Pick<BlobStore, 'createWriter' | 'putFile'>, gc: Pick<BlobGc, 'hold' | 'removeUnreferenced'>) {
    this.#store = store
    this.#gc = gc
  }

  /** Called by the store while the blob cannot be removed, so the hold is in place before anyone could. */
  readonly #committed: CommitHook = ({ hash, added }) => {
    this.#releases.push(this.#gc.hold([hash]))
    if (added) this.#added.add(hash)
  }

  /** A writer whose commit is recorded here (a data set copied while it is scanned). */
  async createWriter (opts: { name: string }): Promise<StoreWriter> {
    return await this.#store.createWriter({ ...opts, onCommit: this.#committed })
  }

  async putFile (path: string, name: string): Promise<BlobRef> {
    return await this.#store.putFile(path, name, { onCommit: this.#committed })
  }

  /** The submit is over: what it stored is the business of the references now. */
  release (): void {
    for (const release of this.#releases.splice(0)) release()
  }

  /** The submit was refused: removes what it added that nothing else references. */
  async discard (): Promise<BlobCount> {
    this.release()
    const added = [...this.#added]
    this.#added.clear()
    return await this.#gc.removeUnreferenced(added)
  }
}
