import { formatRanges } from '../../actors/coordinator/ranges.ts'

/** Slurm's default MaxArraySize is 1001: array task ids stay below 1000, so shard indexes go relative to a base. */
export const ARRAY_SPAN = 1000

/** One sbatch array: shards base + each task id. */
export interface ArrayChunk {
  base: number
  /** `0-3,7`: the task ids (shard index - base) */
  ranges: string
  indexes: number[]
}

/** Shard indexes (any order, any spread) as sbatch arrays whose task ids are below ARRAY_SPAN. */
export function arrayChunks (indexes: readonly number[], span = ARRAY_SPAN): ArrayChunk[] {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b)
  const chunks: ArrayChunk[] = []
  let current: number[] = []
  for (const i of sorted) {
    if (current.length > 0 && i - current[0]! >= span) {
      chunks.push(chunk(current))
      current = []
    }
    current.push(i)
  }
  if (current.length > 0) chunks.push(chunk(current))
  return chunks
}

function chunk (indexes: number[]): ArrayChunk {
  const base = indexes[0]!
  return { base, ranges: formatRanges(indexes.map(i => i - base)), indexes }
}

/** How a Slurm task that left the queue without a result file counts for its shard. */
export type GoneVerdict =
  /** not the shard's fault (cancelled by someone, the node failed, preempted): run it again, not counted as an attempt */
  | { kind: 'lost', reason: string }
  /** the shard's run failed (exit code, time limit, out of memory): counted against it */
  | { kind: 'failed', error: string, retryable: boolean }
  /** accounting has not caught up yet: ask again */
  | { kind: 'wait' }

const LOST_STATES = new Set(['CANCELLED', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'REVOKED'])
/** how long a task may be missing from both squeue and sacct's final states before it counts as lost */
export const ACCOUNTING_LAG_MS = 60_000

/**
 * What a task that left squeue without committing its result means for its
 * shard. `state` is sacct's (undefined while sacct has no final row), `ok`
 * whether sacct says it completed, `cause` its wording, `error` what
 * run-shard wrote for this attempt (if it got that far), `stderr` the tail of
 * the task's error log.
 */
export function goneVerdict (t: { state?: string, final: boolean, ok: boolean, cause: string, error?: { error: string, retryable: boolean }, stderr: string, goneForMs: number }): GoneVerdict {
  const late = t.goneForMs > ACCOUNTING_LAG_MS
  if (!t.final) return late ? { kind: 'lost', reason: `the task left squeue ${Math.round(t.goneForMs / 1000)} s ago and sacct has no final state for it` } : { kind: 'wait' }
  // completed without a committed file: the file may still be on its way (a shared file system's lag)
  if (t.ok) return late ? { kind: 'lost', reason: `${t.cause}, but its result file never appeared in the shared dir` } : { kind: 'wait' }
  const tail = t.stderr.trim() === '' ? '' : `; stderr: ${t.stderr.trim().split('\n').slice(-5).join(' | ')}`
  if (t.state != null && LOST_STATES.has(t.state)) return { kind: 'lost', reason: `Slurm ${t.cause}` }
  if (t.error != null) return { kind: 'failed', error: `${t.error.error} (Slurm: ${t.cause})`, retryable: t.error.retryable }
  return { kind: 'failed', error: `Slurm: ${t.cause}${tail}`, retryable: true }
}
