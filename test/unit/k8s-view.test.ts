import type { V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import { jobView } from '../../bootstrap/k8s/view.ts'

function job (conditions: V1JobCondition[] = [], completions = 2): V1Job {
  return { metadata: { name: 'zp-abc123' }, spec: { completions, template: {} }, status: { conditions } }
}

function pod (name: string, phase: string, more: Partial<V1Pod['status']> = {}, deleting = false): V1Pod {
  return { metadata: { name, ...(deleting ? { deletionTimestamp: new Date() } : {}) }, status: { phase, ...more } }
}

const unschedulable = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 Insufficient nvidia.com/gpu.' }

describe('jobView: what a Job and its pods say of a Kubernetes allocation', () => {
  it('PENDING while no pod runs, with the scheduler\'s reason', () => {
    const view = jobView(job(), [pod('zp-abc123-0-x1', 'Pending', { conditions: [unschedulable] }), pod('zp-abc123-1-x2', 'Pending', { conditions: [unschedulable] })], 2)
    expect(view).toEqual({ state: 'PENDING', requested: 2, running: 0, reason: 'pod zp-abc123-0-x1 Unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu.' })
  })

  it('PENDING with the image pull error of a scheduled pod', () => {
    const waiting = { containerStatuses: [{ name: 'zp-node', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'pull access denied for ghcr.io/lab/nope' } } }] }
    expect(jobView(job(), [pod('p0', 'Pending', waiting)], 2)).toMatchObject({ state: 'PENDING', running: 0, reason: 'pod p0 ErrImagePull: pull access denied for ghcr.io/lab/nope' })
  })

  it('PENDING with no reason while pods are merely being created', () => {
    expect(jobView(job(), [], 2)).toEqual({ state: 'PENDING', requested: 2, running: 0 })
    expect(jobView(job(), [pod('p0', 'Pending', { containerStatuses: [{ name: 'zp-node', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] })], 2)).toEqual({ state: 'PENDING', requested: 2, running: 0 })
  })

  it('RUNNING counts running pods, not the ones being deleted; a pod that cannot be placed is said', () => {
    const view = jobView(job([], 3), [pod('p0', 'Running'), pod('p1', 'Running', {}, true), pod('p2', 'Pending', { conditions: [unschedulable] })], 3)
    expect(view).toMatchObject({ state: 'RUNNING', requested: 3, running: 1 })
    expect(view.reason).toContain('Unschedulable')
  })

  it('ENDED on Complete, FAILED on Failed with its reason and message; conditions are found by type, in any order', () => {
    const complete = jobView(job([{ type: 'SuccessCriteriaMet', status: 'True' }, { type: 'Complete', status: 'True' }]), [pod('p0', 'Succeeded')], 2)
    expect(complete).toMatchObject({ state: 'ENDED', running: 0 })
    const failed = jobView(job([
      { type: 'Suspended', status: 'False' },
      { type: 'Complete', status: 'False' },
      { type: 'Failed', status: 'True', reason: 'FailedIndexes', message: 'Job has failed indexes' }
    ]), [pod('p0', 'Failed')], 2)
    expect(failed).toEqual({ state: 'FAILED', requested: 2, running: 0, reason: 'the Job failed: FailedIndexes: Job has failed indexes' })
    // a condition present but False does not count
    expect(jobView(job([{ type: 'Failed', status: 'False' }]), [pod('p0', 'Running')], 2)).toMatchObject({ state: 'RUNNING' })
  })

  it('a Job that is gone is ENDED, saying so', () => {
    expect(jobView(undefined, [], 2)).toMatchObject({ state: 'ENDED', requested: 2, running: 0, reason: expect.stringContaining('gone') })
  })
})
