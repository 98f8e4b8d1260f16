import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Allocation, EngineView, SlurmUp } from '../../protocols/bridge/schema.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'
import type { SlurmClient } from './commands.ts'
import { attachedScript } from './script.ts'
import { allocationView } from './states.ts'

/** how long `down` waits for the array to leave squeue (its nodes draining) */
const DOWN_WAIT_MS = 60_000

/**
 * Attached Slurm capacity: one sbatch array whose tasks each run a
 * `zp-node join` on node-local scratch, labelled bridge=slurm,
 * slurm.job=<job>, zp.bridge=slurm-<job>.
 */
export function slurmEngine (opts: { client: () => SlurmClient, workDir: string }): BridgeEngine<SlurmUp> {
  return {
    engine: 'slurm',
    async up (options: SlurmUp, cmd: JoinCommand, signal: AbortSignal) {
      const client = opts.client()
      const logDir = join(opts.workDir, 'logs')
      await mkdir(logDir, { recursive: true })
      // the registry settled the idle time and the key file (defaults, 0 for never) into the join command
      const { idleMs: _idle, pskFile: _psk, ...placement } = options
      const { script, args } = attachedScript({ ...placement, ...cmd, jobName: 'zp-node', logDir })
      const file = join(opts.workDir, `attached-${Date.now()}.sh`)
      await writeFile(file, script, { mode: 0o700 })
      const job = await client.sbatch(file, args, signal)
      return { id: `slurm-${job}`, engineId: job, requested: options.nodes }
    },
    async view (alloc: Allocation, signal: AbortSignal): Promise<EngineView> {
      const client = opts.client()
      const [queue, acct] = await Promise.all([client.squeue([alloc.engineId], signal), client.sacct([alloc.engineId], signal)])
      // accounting lags the queue by a few seconds: until it catches up, what was last known stands
      const last: EngineView = { state: alloc.state, requested: alloc.requested, running: alloc.running, ...(alloc.reason != null ? { reason: alloc.reason } : {}) }
      return allocationView(alloc.requested, queue, acct, last)
    },
    async down (alloc: Allocation, signal: AbortSignal): Promise<void> {
      const client = opts.client()
      await client.scancel([alloc.engineId], signal)
      // the array's nodes get SIGTERM and drain; it is released once Slurm has let every task go
      const until = Date.now() + DOWN_WAIT_MS
      while ((await client.squeue([alloc.engineId], signal)).length > 0) {
        if (Date.now() > until) throw new Error(`job ${alloc.engineId} is still in squeue ${DOWN_WAIT_MS / 1000} s after scancel; check 'squeue -j ${alloc.engineId}'`)
        await new Promise(resolve => setTimeout(resolve, 250))
        signal.throwIfAborted()
      }
    }
  }
}
