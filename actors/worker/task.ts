import type { Lease } from '../../protocols/campaign/messages.ts'
import type { BlobRef, Workload } from '../../protocols/campaign/spec.ts'
import { ShardFailure, type ShardTask } from './runners/types.ts'

/** A lease the worker took: queued, running, or its result on its way. */
export interface Task {
  key: string
  campaignId: string
  campaignName: string
  coordinator: string
  workload: Workload
  params: Record<string, unknown>
  lease: Lease
  abort: AbortController
  /** why it was aborted: the coordinator cancelled it, or the node is draining */
  aborted?: 'cancelled' | 'draining'
}

/** Where a shard's files come from: the coordinator's blob store. */
export interface ShardBlobs {
  /** a workload file from `from`'s store (cached after the first time); the local path */
  fetch: (from: string, ref: BlobRef, signal: AbortSignal) => Promise<string>
  /** bytes [start, end) of `ref` on `from`, whose sha256 is `hash`: where to read them locally */
  fetchSlice: (from: string, ref: BlobRef, range: { start: number, end: number, hash: string }, signal: AbortSignal) => Promise<{ path: string, start: number, end: number }>
}

/** The files a shard's runner reads, fetched from its coordinator: the module, or the model and the shard's slice of the data. */
export async function shardFiles (blobs: ShardBlobs, task: Task, signal: AbortSignal): Promise<ShardTask['files']> {
  const w = task.workload
  const from = task.coordinator
  if (w.kind === 'module') return { module: await blobs.fetch(from, w.module, signal) }
  if (w.kind === 'onnx') {
    const shard = task.lease.shard
    if (shard.kind !== 'rows') throw new ShardFailure('onnx shards must be rows shards', { retryable: false })
    const [model, data] = await Promise.all([
      blobs.fetch(from, w.model, signal),
      blobs.fetchSlice(from, w.data.blob, { start: shard.byteStart, end: shard.byteEnd, hash: shard.sliceHash }, signal)
    ])
    return { model, data }
  }
  return {}
}

/** What the runner gets. */
export function shardTask (task: Task, files: ShardTask['files']): ShardTask {
  return {
    campaignId: task.campaignId,
    shard: task.lease.shard,
    attempt: task.lease.attempt,
    params: task.params,
    workload: task.workload,
    files,
    ...(task.lease.resumeFrom !== undefined ? { resumeFrom: task.lease.resumeFrom } : {})
  }
}
