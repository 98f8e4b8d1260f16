import type { Allocation, EngineView } from '../../protocols/bridge/schema.ts'

/** What a bridge needs to start `zp-node join` processes somewhere else. */
export interface JoinCommand {
  /** absolute Node ≥ 22 and zp-node.mjs (the machine's `node` may be older), then any fixed arguments */
  argv: string[]
  /** mesh addresses the new nodes join through */
  bootstrap: string[]
  /** pre-shared key file, at the same path where the nodes run */
  pskFile?: string
  /** the key's text, where no file is named and this node holds its key from elsewhere (--psk-env): for engines that carry the text themselves (a Kubernetes Secret) */
  pskText?: string
  /** a bridged node drains and exits after this long without work; undefined: it stays */
  idleMs?: number
  /** how long a node told to stop may take to hand its work back */
  drainMs: number
}

/**
 * One engine (Slurm, Dask) as the bridge registry sees it: a narrow port,
 * so the registry's bookkeeping is the same for all of them and each engine's
 * talk (commands, a Python driver) stays in its folder.
 */
export interface BridgeEngine<Options> {
  readonly engine: Allocation['engine']
  /** Starts the allocation; returns its id (`slurm-<job>`, `dask-<random>`), the engine's handle and the nodes asked for. */
  up: (options: Options, join: JoinCommand, signal: AbortSignal) => Promise<{ id: string, engineId: string, requested: number }>
  /** What the engine says of it now. */
  view: (alloc: Allocation, signal: AbortSignal) => Promise<EngineView>
  /** Releases it: nothing of it is left running afterwards. */
  down: (alloc: Allocation, signal: AbortSignal) => Promise<void>
}
