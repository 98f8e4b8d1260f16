import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Allocation, EngineView, RayUp } from '../../protocols/bridge/schema.ts'
import { delay } from '../../protocols/common/signals.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'
import { BridgeError } from '../bridge/registry.ts'
import { FINAL_RAY_STATES, RayError, RayJobsClient } from './client.ts'
import { DEFAULT_STOP_WAIT_S, rayJobRequest, STOP_WAIT_ENV } from './job.ts'
import { nodeProgress, rayView } from './view.ts'

export const LAUNCHER_PY = fileURLToPath(new URL('./launcher.py', import.meta.url))
/** how often `down` asks whether the stopped job has ended */
const STOP_POLL_MS = 300
/** beyond Ray's wait between SIGTERM and SIGKILL, for the head to record the job STOPPED */
const STOP_SLACK_MS = 20_000

/**
 * Ray capacity: one job submitted through the Jobs REST API whose
 * launcher (bootstrap/ray/launcher.py) starts one Ray task per mesh node,
 * each running `zp-node join` labelled bridge=ray, ray.job=<submission id>,
 * zp.bridge=<allocation id>.
 */
export function rayEngine (): BridgeEngine<RayUp> {
  let launcher: Promise<string> | undefined
  const client = (options: RayUp): RayJobsClient => new RayJobsClient({ address: options.address })
  return {
    engine: 'ray',
    async up (options: RayUp, join: JoinCommand, signal: AbortSignal) {
      const reserved = Object.keys(options.resources ?? {}).filter(k => k === 'CPU' || k === 'GPU')
      if (reserved.length > 0) throw new BridgeError(`--resources cannot name ${reserved.join(' or ')}: Ray takes those as --num-cpus and --num-gpus`, 400)
      launcher ??= readFile(LAUNCHER_PY, 'utf8')
      const id = `ray-${randomBytes(3).toString('hex')}`
      const ray = client(options)
      // a wrong address fails here, named as such, before anything is submitted
      await ray.version(signal)
      const { submissionId } = await ray.submit(rayJobRequest(options, join, id, await launcher), signal)
      return { id, engineId: submissionId, requested: options.nodes }
    },
    async view (alloc: Allocation, signal: AbortSignal): Promise<EngineView> {
      const ray = client(alloc.options as RayUp)
      let info
      try {
        info = await ray.info(alloc.engineId, signal)
      } catch (err) {
        // the head no longer knows the job: nothing of it runs there
        if (err instanceof RayError && err.code === 'not-found') return { state: 'FAILED', requested: alloc.requested, running: 0, reason: err.message }
        throw err
      }
      const progress = info.status === 'RUNNING' ? nodeProgress(await ray.logs(alloc.engineId, signal)) : undefined
      return rayView(info, alloc.requested, progress)
    },
    async down (alloc: Allocation, signal: AbortSignal): Promise<void> {
      const ray = client(alloc.options as RayUp)
      let info
      try {
        info = await ray.info(alloc.engineId, signal)
        if (FINAL_RAY_STATES.has(info.status)) return
        await ray.stop(alloc.engineId, signal)
      } catch (err) {
        if (err instanceof RayError && err.code === 'not-found') return
        throw err
      }
      // the launcher cancels its tasks and their nodes drain before the driver exits, within the wait
      // the job asked Ray for (RAY_JOB_STOP_WAIT_TIME_S): final means nothing of it runs
      const asked = Number(info.envVars[STOP_WAIT_ENV] ?? DEFAULT_STOP_WAIT_S)
      const stopped = Date.now()
      const until = stopped + (Number.isFinite(asked) ? asked : DEFAULT_STOP_WAIT_S) * 1000 + STOP_SLACK_MS
      for (;;) {
        await delay(STOP_POLL_MS, signal)
        info = await ray.info(alloc.engineId, signal)
        if (FINAL_RAY_STATES.has(info.status)) return
        if (Date.now() > until) throw new RayError('timeout', `Ray job ${alloc.engineId} is still ${info.status} ${Math.round((Date.now() - stopped) / 1000)} s after it was told to stop; check 'ray job status ${alloc.engineId}' and 'ray job logs ${alloc.engineId}' on the head`)
      }
    }
  }
}
