import { releaseSlurm, RUN_ENV } from './slurm.ts'

/**
 * Once per vitest run: names the run (its pid, inherited by the workers) so
 * the engine clusters a test file starts (startSlurm) are shared by the run's
 * files and stopped when it ends, unless another live run still uses them.
 */
export default function setup (): () => Promise<void> {
  const run = String(process.pid)
  process.env[RUN_ENV] = run
  return async () => { await releaseSlurm(run) }
}
