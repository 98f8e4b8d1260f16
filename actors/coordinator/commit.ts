import type { ReplicaOp } from '../../protocols/campaign/replica.ts'

export interface CommitTarget {
  /** writes the ops to the local store in one batch */
  apply: (ops: ReplicaOp[]) => Promise<void>
  /** hands the ops to the replica group, in order; returns their last sequence number (0 with no replicas) */
  push: (ops: ReplicaOp[]) => number
}

interface Pending {
  ops: ReplicaOp[]
  resolve: (seq: number) => void
  reject: (err: unknown) => void
}

/**
 * The one write path of a campaign's durable state: every change is a list of
 * replica ops, written to the local store and then pushed to the replicas
 * (which apply the same ops with the same code). Commits are written in the
 * order they are made, never two at once: LevelDB may finish two concurrent
 * batches in either order, and a lease deleted after it was granted again
 * would be lost. Commits made while a write is in flight go out together in
 * the next one, so ordering costs no throughput.
 */
export class CommitQueue {
  readonly #target: CommitTarget
  #pending: Pending[] = []
  #writing: Promise<void> | undefined

  constructor (target: CommitTarget) {
    this.#target = target
  }

  /** Resolves with the replication sequence number of the ops once they are in the local store. */
  async commit (ops: ReplicaOp[]): Promise<number> {
    if (ops.length === 0) return 0
    const done = Promise.withResolvers<number>()
    this.#pending.push({ ops, resolve: done.resolve, reject: done.reject })
    this.#writing ??= this.#drain()
    return await done.promise
  }

  /** Resolves once everything committed so far is written (or has failed). */
  async idle (): Promise<void> {
    await this.#writing
  }

  async #drain (): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending
        this.#pending = []
        const ops = batch.length === 1 ? batch[0]!.ops : batch.flatMap(p => p.ops)
        try {
          await this.#target.apply(ops)
        } catch (err) {
          for (const p of batch) p.reject(err)
          continue
        }
        const seq = this.#target.push(ops)
        for (const p of batch) p.resolve(seq)
      }
    } finally {
      this.#writing = undefined
    }
  }
}
