import { describe, expect, it } from 'vitest'
import { DaskError, daskView, type DaskWorkerInfo } from '../../bootstrap/dask/client.ts'

function worker (name: string, childPid: number | null, alive: boolean, exitCode: number | null = null): DaskWorkerInfo {
  return { name, address: `tcp://127.0.0.1:${4000 + Number(name.slice(-1))}`, nthreads: 2, childPid, alive, exitCode }
}

describe('daskView: what the scheduler says of a Dask allocation', () => {
  it('RUNNING while nodes live: running counts live nodes, requested counts workers', () => {
    expect(daskView({ registered: true, workers: [worker('w0', 10, true), worker('w1', 11, false), worker('w2', 12, true)] }))
      .toEqual({ state: 'RUNNING', requested: 3, running: 2 })
  })

  it('PENDING while the plugin waits for a worker', () => {
    expect(daskView({ registered: true, workers: [] })).toEqual({ state: 'PENDING', reason: 'no Dask worker connected', requested: 0, running: 0 })
  })

  it('PENDING with the exit codes when every node is gone but the plugin stays', () => {
    const view = daskView({ registered: true, workers: [worker('w0', 10, false, 3), worker('w1', 11, false, 3)] })
    expect(view).toMatchObject({ state: 'PENDING', requested: 2, running: 0 })
    expect(view.reason).toContain('exit codes 3')
  })

  it('ENDED once the plugin is unregistered, whatever workers remain', () => {
    expect(daskView({ registered: false, workers: [worker('w0', null, false)] })).toEqual({ state: 'ENDED', requested: 0, running: 0 })
  })

  it('FAILED with the reason when the scheduler cannot be reached', () => {
    const err = new DaskError('unreachable', 'cannot reach the Dask scheduler at tcp://10.0.0.5:8786: timed out; is `dask scheduler` running there? check the address and port')
    expect(daskView(err)).toEqual({ state: 'FAILED', reason: err.message, requested: 0, running: 0 })
  })
})
