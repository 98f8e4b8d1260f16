import type { Workload } from '../../../protocols/campaign/spec.ts'
import type { AbortMessage, ExitMessage, StartMessage } from './thread-pool.ts'

/**
 * Messages between the ONNX runner (parent) and its worker threads
 * (onnx-thread.ts), over the shared thread pool (thread-pool.ts). A thread
 * opens one ORT session, for one model and provider plan, when it starts;
 * then it runs shards on it, one at a time.
 */

export type OnnxWorkload = Extract<Workload, { kind: 'onnx' }>

export interface OnnxThreadData {
  model: string
  /** providers to try, best first, cpu last; a step with `skip` is not tried (the probe found it unusable) */
  plan: ReadonlyArray<{ ep: string, skip?: string }>
  intraOpNumThreads: number
}

/** Which provider the session runs on, and what each provider tried before it failed with (ORT's own words). */
export interface SessionReady {
  executionProvider: string
  failures: Array<{ ep: string, message: string }>
}

export interface RunRequest {
  type: 'run'
  id: number
  workload: OnnxWorkload
  data: { path: string, start?: number, end?: number }
  /** global index of the slice's first row: the shard's start */
  firstRow: number
  /** rows the slice must hold: the shard's size */
  rows: number
}

export type ToThread = RunRequest | AbortMessage | ExitMessage

/**
 * `values`: the output's values for the shard's rows, `perRow` per row, in
 * row order, of the output tensor's own type: a typed array (transferred, not
 * copied) or, for string tensors, an array.
 */
export interface RunDone {
  type: 'done'
  id: number
  values: ArrayLike<number | bigint | string | boolean>
  perRow: number
}

export type RunReport =
  | { type: 'progress', id: number, fraction: number }
  | RunDone
  /** `ortError`: ORT's message, appended to `message` once trimmed (ortReason) */
  | { type: 'failed', id: number, message: string, retryable: boolean, ortError?: string }

export type FromThread = StartMessage<SessionReady> | RunReport
