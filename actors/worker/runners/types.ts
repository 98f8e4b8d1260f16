import type { Logger } from 'pino'
import type { CapabilityReport } from '../../../protocols/membership/capabilities.ts'
import type { Shard, ShardOutput } from '../../../protocols/campaign/shard.ts'
import type { Workload } from '../../../protocols/campaign/spec.ts'

/** One shard to run, with the local paths of the blobs it needs (fetched and hash-checked by the worker). */
export interface ShardTask {
  campaignId: string
  shard: Shard
  /** 1 for the first try */
  attempt: number
  params: Record<string, unknown>
  workload: Workload
  files: {
    /** module workloads: the module file, importable */
    module?: string
    /** onnx workloads: the model file */
    model?: string
    /**
     * onnx workloads: where this shard's rows are: bytes [start, end) of `path`
     * (no CSV header). The whole data set when the worker has it, read in
     * place; else a fetched slice (start 0, end its size). Absent bounds: the
     * start and the end of the file.
     */
    data?: { path: string, start?: number, end?: number }
  }
  /** the last checkpoint a previous attempt of this shard saved (module workloads) */
  resumeFrom?: unknown
}

export interface RunContext {
  /** fires on cancel, on the shard timeout, and when the node stops */
  signal: AbortSignal
  /** 0..1, rate-limited by the caller */
  progress: (fraction: number) => void
  /** module workloads: keep `state` so a retry can resume from it */
  checkpoint?: (state: unknown) => Promise<void>
  log: Logger
}

/**
 * A failure the shard itself raised. `retryable: false` sends the shard to the
 * dead-letter list at once (bad input); otherwise the retry policy applies.
 */
export class ShardFailure extends Error {
  override name = 'ShardFailure'
  readonly retryable: boolean
  constructor (message: string, opts: { retryable?: boolean, cause?: unknown } = {}) {
    super(message, { cause: opts.cause })
    this.retryable = opts.retryable ?? true
  }
}

export interface Runner {
  run: (task: ShardTask, ctx: RunContext) => Promise<ShardOutput>
  /** release threads, sessions and children */
  close: () => Promise<void>
}

export interface RunnerEnvironment {
  /** this node's probe report: the ONNX runner picks its execution provider from it */
  capabilities: () => CapabilityReport | null
  /** concurrent shards this node runs (its slots) */
  slots: number
  /** exec templates this node allows (from its exec config) */
  execTemplates: ExecTemplates
  log: Logger
}

/** `commands:` of a node's exec config: named templates, never a command from the wire. */
export interface ExecTemplate {
  /** program and arguments; `{seed}`, `{index}`, `{start}`, `{end}`, `{attempt}`, `{campaign}` and `{params.NAME}` are substituted per shard, each as a whole argument or inside one */
  argv: string[]
  env?: Record<string, string>
  cwd?: string
}
export type ExecTemplates = Record<string, ExecTemplate>
