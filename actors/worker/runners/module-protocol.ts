import type { Shard } from '../../../protocols/campaign/shard.ts'
import type { AbortMessage, StartMessage } from './thread-pool.ts'

/**
 * Messages between the module runner (parent) and its worker threads
 * (module-thread.ts), over the shared thread pool (thread-pool.ts). One thread
 * runs one shard at a time; `id` ties every message to the run it belongs to,
 * so a late message from a run that has already been settled is recognised
 * and ignored.
 */

export interface ThreadData {
  modulePath: string
}

export interface RunRequest {
  type: 'run'
  id: number
  shard: Shard
  campaign: string
  attempt: number
  params: Record<string, unknown>
  resumeFrom: unknown
}

export type ToThread =
  | RunRequest
  | AbortMessage
  | { type: 'checkpoint-saved', id: number, seq: number, error?: string }

/** what a run of the module reports */
export type RunReport =
  | { type: 'progress', id: number, fraction: number }
  | { type: 'checkpoint', id: number, seq: number, state: unknown }
  | { type: 'done', id: number, rows: unknown[] }
  /** `invalidResult`: run() returned something that is not plain JSON data */
  | { type: 'failed', id: number, message: string, retryable: boolean, invalidResult: boolean }

export type FromThread = StartMessage<object> | RunReport
