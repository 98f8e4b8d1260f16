import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ShardBlobs } from '../../actors/worker/task.ts'
import { ShardFailure } from '../../actors/worker/runners/types.ts'
import { fsReason } from '../../node/blobs/errors.ts'
import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { Manifest } from './manifest.ts'

/**
 * A detached shard's files, where a mesh worker would fetch them from its
 * coordinator: in the manifest's folder. The whole data set is there, so a
 * rows shard reads its range in place, once its bytes match the slice hash
 * the coordinator computed. A file of the wrong size or a slice of the wrong
 * hash will not get better on a retry; a missing one may (a shared file
 * system that has not caught up).
 */
export function detachedBlobs (dir: string, manifest: Manifest): ShardBlobs {
  const file = async (ref: BlobRef): Promise<string> => {
    const rel = manifest.blobs[ref.hash]
    if (rel == null) throw new ShardFailure(`the manifest in ${dir} lists no file for blob ${ref.hash} (${ref.name})`, { retryable: false })
    const path = join(dir, rel)
    let size: number
    try {
      size = (await stat(path)).size
    } catch (err) {
      throw new Error(`cannot read ${ref.name} at ${path}: ${fsReason(err)}`)
    }
    if (size !== ref.size) throw new ShardFailure(`${ref.name} at ${path} is ${size} bytes, but the campaign's is ${ref.size}: the detached folder was changed after it was written`, { retryable: false })
    return path
  }
  return {
    fetch: async (_from, ref) => await file(ref),
    fetchSlice: async (_from, ref, range, signal) => {
      const path = await file(ref)
      const hash = createHash('sha256')
      if (range.end > range.start) {
        for await (const chunk of createReadStream(path, { start: range.start, end: range.end - 1, signal })) hash.update(chunk as Buffer)
      }
      const got = hash.digest('hex')
      if (got !== range.hash) {
        throw new ShardFailure(`bytes [${range.start}, ${range.end}) of ${ref.name} at ${path} have sha256 ${got}, not the slice's ${range.hash}: the data set was changed after the campaign was submitted`, { retryable: false })
      }
      return { path, start: range.start, end: range.end }
    }
  }
}
