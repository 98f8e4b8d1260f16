import { describe, expect, it } from 'vitest'
import type { JoinCommand } from '../../bootstrap/bridge/engine.ts'
import { launcherConfig, rayJobRequest, stopWaitS } from '../../bootstrap/ray/job.ts'

const JOIN: JoinCommand = {
  argv: ['/opt/node24/bin/node', '/opt/zp/node/bin/zp-node.mjs'],
  bootstrap: ['/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWCoord', '/ip4/10.0.0.6/tcp/4001/p2p/12D3KooWCoord'],
  drainMs: 20_000,
  pskFile: '/etc/zp/psk',
  idleMs: 120_000
}

describe('the Ray job of an allocation', () => {
  it('each task runs zp-node join labelled with the bridge, named and housed by index, offering ceil(numCpus) slots', () => {
    const cfg = launcherConfig({ address: 'http://10.0.0.5:8265', nodes: 3, numCpus: 2.5, numGpus: 1, resources: { 'accelerator_type:A100': 1 } }, JOIN, 'ray-3f9a2c')
    expect(cfg).toEqual({
      bridge: 'ray-3f9a2c',
      nodes: 3,
      argv: [
        '/opt/node24/bin/node', '/opt/zp/node/bin/zp-node.mjs', 'join', '/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWCoord', '/ip4/10.0.0.6/tcp/4001/p2p/12D3KooWCoord',
        '--name', 'ray-3f9a2c-{index}', '--data-dir', '{datadir}', '--listen', '/ip4/0.0.0.0/tcp/0',
        '--no-api', '--no-resume', '--slots', '3',
        '--label', 'bridge=ray', '--label', 'ray.job=zp-ray-3f9a2c', '--label', 'zp.bridge=ray-3f9a2c',
        '--drain-timeout-ms', '20000', '--psk', '/etc/zp/psk', '--exit-when-idle', '120000'
      ],
      task: { num_cpus: 2.5, num_gpus: 1, resources: { 'accelerator_type:A100': 1 } },
      drain_s: 20
    })
  })

  it('defaults: one CPU and one slot per node; no key file, no idle exit when the join command has none', () => {
    const join: JoinCommand = { argv: JOIN.argv, bootstrap: JOIN.bootstrap, drainMs: 5_500 }
    const cfg = launcherConfig({ address: 'http://h:8265', nodes: 1 }, join, 'ray-000001')
    expect(cfg.task).toEqual({ num_cpus: 1 })
    expect(cfg.argv.slice(cfg.argv.indexOf('--slots'), cfg.argv.indexOf('--slots') + 2)).toEqual(['--slots', '1'])
    expect(cfg.argv).not.toContain('--psk')
    expect(cfg.argv).not.toContain('--exit-when-idle')
    expect(cfg.drain_s).toBe(6)
  })

  it('submits the launcher by its source: python3 (or --python) runs it from the env, and the mesh is named in metadata', () => {
    const req = rayJobRequest({ address: 'http://h:8265', nodes: 2, python: '/opt/conda/bin/python' }, JOIN, 'ray-3f9a2c', 'print("launcher")')
    expect(req.entrypoint).toBe('/opt/conda/bin/python -c "import os; exec(os.environ[\'ZP_RAY_LAUNCHER\'])"')
    expect(req.submission_id).toBe('zp-ray-3f9a2c')
    expect(req.metadata).toEqual({ 'zp.bridge': 'ray-3f9a2c', 'zp.mesh': '12D3KooWCoord' })
    const env = req.runtime_env!.env_vars!
    expect(env.ZP_RAY_LAUNCHER).toBe('print("launcher")')
    expect(JSON.parse(env.ZP_RAY_CONFIG!)).toEqual(launcherConfig({ address: 'http://h:8265', nodes: 2, python: '/opt/conda/bin/python' }, JOIN, 'ray-3f9a2c'))
    expect(env.ZP_RAY_BRIDGE).toBe('ray-3f9a2c')
    // Ray waits this long between its SIGTERM and SIGKILL on stop: the nodes' drain fits
    expect(Number(env.RAY_JOB_STOP_WAIT_TIME_S)).toBe(stopWaitS(JOIN.drainMs))
    expect(stopWaitS(JOIN.drainMs)).toBeGreaterThan(JOIN.drainMs / 1000)
    expect(env.RAY_DEDUP_LOGS).toBe('0')
    expect(Object.values(env).every(v => typeof v === 'string')).toBe(true)
    expect(rayJobRequest({ address: 'http://h:8265', nodes: 1 }, JOIN, 'ray-3f9a2c', '').entrypoint).toMatch(/^python3 -c /)
  })
})
