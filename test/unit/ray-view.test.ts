import { describe, expect, it } from 'vitest'
import type { RayJobInfo } from '../../bootstrap/ray/client.ts'
import { nodeProgress, rayView } from '../../bootstrap/ray/view.ts'

function info (status: RayJobInfo['status'], more: Partial<RayJobInfo> = {}): RayJobInfo {
  return { submissionId: 'zp-ray-3f9a2c', status, metadata: {}, envVars: {}, ...more }
}

const LOGS = [
  'zp-ray: job of 3 node(s) for ray-3f9a2c submitted, each task asking for {"num_cpus": 1}',
  '(run_node pid=3151) zp-ray: node 0 started: pid 3156 on worker-a',
  '(run_node pid=3152, ip=10.0.0.7) zp-ray: node 1 started: pid 9001 on worker-b',
  '(run_node pid=3151) zp-ray: node 0 exited with code 0',
  ''
].join('\n')

describe('nodeProgress: the launcher\'s lines in the job\'s logs', () => {
  it('counts started, ended and running nodes whatever prefix Ray put before a task\'s line', () => {
    expect(nodeProgress(LOGS)).toEqual({ started: 2, ended: 1, running: 1 })
  })

  it('a node lost with its worker has ended; a line printed twice counts once', () => {
    const logs = LOGS + '(run_node pid=3152, ip=10.0.0.7) zp-ray: node 1 started: pid 9001 on worker-b\nzp-ray: node 1 lost: The worker died unexpectedly while executing this task.\n'
    expect(nodeProgress(logs)).toEqual({ started: 2, ended: 2, running: 0 })
  })

  it('no lines, nothing running', () => {
    expect(nodeProgress('')).toEqual({ started: 0, ended: 0, running: 0 })
  })
})

describe('rayView: what Ray says of the job, as an allocation state', () => {
  it('PENDING with Ray\'s message', () => {
    expect(rayView(info('PENDING', { message: 'Job has not started yet. It may be waiting for resources' }), 3))
      .toEqual({ state: 'PENDING', requested: 3, running: 0, reason: 'the Ray job is pending: Job has not started yet. It may be waiting for resources' })
  })

  it('RUNNING with the nodes running, and why the others are not', () => {
    expect(rayView(info('RUNNING'), 3, nodeProgress(LOGS)))
      .toEqual({ state: 'RUNNING', requested: 3, running: 1, reason: '1 node waiting for Ray to schedule its task (resources); 1 node ended (see the job\'s logs)' })
    expect(rayView(info('RUNNING'), 2, { started: 2, ended: 0, running: 2 })).toEqual({ state: 'RUNNING', requested: 2, running: 2 })
  })

  it('SUCCEEDED (every node left when idle) and STOPPED are ENDED', () => {
    expect(rayView(info('SUCCEEDED', { driverExitCode: 0 }), 2)).toMatchObject({ state: 'ENDED', running: 0, reason: 'the Ray job ended: every node left (idle)' })
    expect(rayView(info('STOPPED'), 2)).toMatchObject({ state: 'ENDED', running: 0, reason: 'the Ray job was stopped' })
  })

  it('FAILED with the launcher\'s lines about the failed nodes out of Ray\'s message', () => {
    const message = 'Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n' +
      '(run_node pid=7) zp-ray: node 0 exited with code 127: cannot run /opt/node24/bin/node: [Errno 2] No such file or directory\n' +
      'zp-ray: node 1 exited with code 0\n' +
      'zp-ray: the job ends: 1 of 2 node(s) failed\n'
    const view = rayView(info('FAILED', { message, driverExitCode: 1 }), 2)
    expect(view).toEqual({ state: 'FAILED', requested: 2, running: 0, reason: 'the Ray job failed (driver exit code 1): (run_node pid=7) zp-ray: node 0 exited with code 127: cannot run /opt/node24/bin/node: [Errno 2] No such file or directory' })
  })

  it('FAILED otherwise with the tail of Ray\'s message, cut to fit the registry', () => {
    const message = 'Traceback (most recent call last):\n' + '  File "x", line 1\n'.repeat(200) + 'ModuleNotFoundError: No module named \'ray\''
    const view = rayView(info('FAILED', { message, driverExitCode: 1 }), 2)
    expect(view.state).toBe('FAILED')
    expect(view.reason).toMatch(/^the Ray job failed \(driver exit code 1\): /)
    expect(view.reason).toMatch(/No module named 'ray'$/)
    expect(view.reason!.length).toBeLessThan(2000)
    expect(rayView(info('FAILED'), 1).reason).toBe('the Ray job failed')
  })
})
