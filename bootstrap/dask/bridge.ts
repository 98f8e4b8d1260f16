import { randomBytes } from 'node:crypto'
import type { Allocation, DaskUp, EngineView } from '../../protocols/bridge/schema.ts'
import type { BridgeEngine, JoinCommand } from '../bridge/engine.ts'
import { DaskDriver, daskView } from './client.ts'

/** a driver call may wait for every node to start (up) or to drain (down: up to the drain, 20 s by default) */
const DRIVER_TIMEOUT_MS = 90_000

/**
 * Attached Dask capacity: a WorkerPlugin (bootstrap/dask/driver.py) starts
 * one `zp-node join` on every current and future Dask worker, labelled
 * bridge=dask, dask.worker=<name>, zp.bridge=<allocation id>.
 */
export function daskEngine (): BridgeEngine<DaskUp> {
  const drivers = new Map<string, Promise<DaskDriver>>()
  const driver = async (python: string | undefined, signal: AbortSignal): Promise<DaskDriver> => {
    const key = python ?? ''
    let d = drivers.get(key)
    if (d == null) {
      d = DaskDriver.findPython(python, signal).then(p => new DaskDriver({ python: p, timeoutMs: DRIVER_TIMEOUT_MS }))
      d.catch(() => drivers.delete(key))
      drivers.set(key, d)
    }
    return await d
  }
  return {
    engine: 'dask',
    async up (options: DaskUp, join: JoinCommand, signal: AbortSignal) {
      const id = `dask-${randomBytes(3).toString('hex')}`
      const argv = [
        ...join.argv, 'join', ...join.bootstrap,
        '--name', 'dask-{worker}', '--data-dir', '{datadir}', '--listen', '/ip4/0.0.0.0/tcp/0',
        '--no-api', '--no-resume', '--slots', '{slots}',
        '--label', 'bridge=dask', '--label', 'dask.worker={worker}', '--label', `zp.bridge=${id}`,
        '--drain-timeout-ms', String(join.drainMs),
        ...(join.pskFile != null ? ['--psk', join.pskFile] : []),
        ...(join.idleMs != null ? ['--exit-when-idle', String(join.idleMs)] : [])
      ]
      const d = await driver(options.python, signal)
      const up = await d.up({ scheduler: options.scheduler, id, argv, perWorker: options.perWorker, drainS: Math.ceil(join.drainMs / 1000) }, signal)
      return { id, engineId: up.plugin, requested: up.workers.length }
    },
    async view (alloc: Allocation, signal: AbortSignal): Promise<EngineView> {
      const options = alloc.options as DaskUp
      const d = await driver(options.python, signal)
      // an unreachable scheduler throws: the registry keeps the last known state and says why
      return daskView(await d.info(options.scheduler, alloc.id, signal))
    },
    async down (alloc: Allocation, signal: AbortSignal): Promise<void> {
      const options = alloc.options as DaskUp
      await (await driver(options.python, signal)).down(options.scheduler, alloc.id, signal)
    }
  }
}
