import { describe, expect, it } from 'vitest'
import { Api } from '../clusters/fake-k8s/api.ts'
import { expand } from '../clusters/fake-k8s/container-env.ts'
import { Deleter } from '../clusters/fake-k8s/deletion.ts'
import { ApiError } from '../clusters/fake-k8s/errors.ts'
import { backoffMs, formatIntervals, matchPodFailurePolicy, parseIntervals } from '../clusters/fake-k8s/job-rules.ts'
import { milli } from '../clusters/fake-k8s/quantity.ts'
import { parseFieldSelector, parseLabelSelector } from '../clusters/fake-k8s/selectors.ts'
import { Store } from '../clusters/fake-k8s/store.ts'
import type { Job, KObject, Pod } from '../clusters/fake-k8s/wire.ts'

// The fake Kubernetes API server's rules, without a server or processes: what
// kube-apiserver, the Job controller and the kubelet do, checked piece by piece.
const obj = (labels: Record<string, string>): KObject => ({ metadata: { name: 'x', namespace: 'default', labels } })

function api (): { api: Api, store: Store } {
  const store = new Store()
  const a = new Api(store, new Deleter(store))
  a.create('namespaces', undefined, { metadata: { name: 'default' } })
  return { api: a, store }
}

function statusOf (fn: () => unknown): Record<string, unknown> {
  try {
    fn()
  } catch (err) {
    if (err instanceof ApiError) return err.status as unknown as Record<string, unknown>
    throw err
  }
  throw new Error('expected an ApiError')
}

describe('fake Kubernetes rules', () => {
  it('expands $(VAR) as Kubernetes does: defined names only, $$ escapes, anything else kept', () => {
    const vars = { A: 'one', B: 'two' }
    expect(expand('$(A)-$(B)', vars)).toBe('one-two')
    expect(expand('$(MISSING) $$(A) $$ $x $( $(A', vars)).toBe('$(MISSING) $(A) $ $x $( $(A')
    expect(expand('cost: 5$', vars)).toBe('cost: 5$')
    expect(expand('$()', vars)).toBe('$()')
  })

  it('matches label selectors (equality, sets, existence) and refuses unknown field selectors', () => {
    const o = obj({ app: 'zp', tier: 'gpu', 'batch.kubernetes.io/job-name': 'mesh' })
    const matches = (s: string): boolean => parseLabelSelector(s)(o)
    expect(matches('app=zp,batch.kubernetes.io/job-name==mesh')).toBe(true)
    expect(matches('tier in (cpu, gpu), app notin (other)')).toBe(true)
    expect(matches('app, !missing')).toBe(true)
    expect(matches('app!=zp')).toBe(false)
    expect(matches('tier in (cpu)')).toBe(false)
    expect(matches('missing notin (a)')).toBe(true)
    expect(() => parseLabelSelector('app in cpu')).toThrow(/unable to parse requirement/)
    const pod = { ...obj({}), spec: { containers: [] }, status: { phase: 'Running' } } as Pod
    expect(parseFieldSelector('pods', 'status.phase=Running,metadata.name!=y')(pod)).toBe(true)
    expect(() => parseFieldSelector('pods', 'spec.image=x')).toThrow('field label not supported: spec.image')
  })

  it('reads quantities in thousandths and rejects what is not one', () => {
    expect([milli('500m'), milli('2'), milli('1.5'), milli('16Gi'), milli('1k'), milli('1e3'), milli(2)]).toEqual([500, 2000, 1500, 16 * 2 ** 30 * 1000, 1e6, 1e6, 2000])
    expect(milli('two')).toBeUndefined()
    expect(milli('1GB')).toBeUndefined()
  })

  it('writes index sets as interval strings and backs off 10 s doubling to 10 min', () => {
    expect(formatIntervals(new Set([0, 1, 2, 4, 6, 7]))).toBe('0-2,4,6-7')
    expect([...parseIntervals('0-2,4')]).toEqual([0, 1, 2, 4])
    expect(formatIntervals(parseIntervals(''))).toBe('')
    expect([0, 1, 2, 3, 10].map(backoffMs)).toEqual([0, 10_000, 20_000, 40_000, 600_000])
  })

  it('matches the first podFailurePolicy rule: exit codes (never 0) and pod conditions', () => {
    const job = { spec: { podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }, { action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [1] } }] } } } as unknown as Job
    const failedPod = (exitCode: number, conditions: Array<{ type: string, status: 'True' }> = []): Pod => ({ metadata: { name: 'p', namespace: 'ns' }, spec: { containers: [] }, status: { phase: 'Failed', conditions, containerStatuses: [{ name: 'main', image: '', imageID: '', ready: false, started: false, restartCount: 0, state: { terminated: { exitCode, reason: 'Error', finishedAt: '' } }, lastState: {} }] } })
    expect(matchPodFailurePolicy(job, failedPod(137, [{ type: 'DisruptionTarget', status: 'True' }]))?.action).toBe('Ignore')
    expect(matchPodFailurePolicy(job, failedPod(42))).toEqual({ action: 'FailJob', message: 'Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1' })
    expect(matchPodFailurePolicy(job, failedPod(1))).toBeUndefined()
    expect(matchPodFailurePolicy(job, failedPod(0))).toBeUndefined()
  })

  it('defaults a Job as the API server does and words its 422 causes the same way', () => {
    const { api: a } = api()
    const job = a.create<Job>('jobs', 'default', { metadata: { name: 'mesh' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'zp:1' }] } } } })
    expect(job.spec).toMatchObject({ completions: 1, parallelism: 1, backoffLimit: 6, completionMode: 'NonIndexed', suspend: false, podReplacementPolicy: 'TerminatingOrFailed', selector: { matchLabels: { 'batch.kubernetes.io/controller-uid': job.metadata.uid } } })
    expect(job.metadata.labels).toEqual({ 'batch.kubernetes.io/controller-uid': job.metadata.uid, 'batch.kubernetes.io/job-name': 'mesh', 'controller-uid': job.metadata.uid, 'job-name': 'mesh' })
    expect(job.spec.template.spec).toMatchObject({ terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst' })
    expect(statusOf(() => a.create('jobs', 'default', { metadata: { name: 'mesh' }, spec: job.spec }))).toMatchObject({ code: 409, reason: 'AlreadyExists' })

    const per = a.create<Job>('jobs', 'default', { metadata: { name: 'per' }, spec: { completionMode: 'Indexed', completions: 2, backoffLimitPerIndex: 1, podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] }, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'zp:1' }] } } } })
    expect(per.spec).toMatchObject({ backoffLimit: 2147483647, podReplacementPolicy: 'Failed', podFailurePolicy: { rules: [{ onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }] } })

    const bad = statusOf(() => a.create('jobs', 'default', { metadata: { name: 'x'.repeat(64) }, spec: { completionMode: 'Indexed', parallelism: 2, template: { spec: { containers: [{ name: 'Main', image: 'zp:1', resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } }] } } } }))
    expect(bad).toMatchObject({ code: 422, reason: 'Invalid' })
    expect(bad.message).toMatch(/^Job\.batch "x{64}" is invalid: \[/)
    expect((bad.details as { causes: Array<{ field: string }> }).causes.map(c => c.field)).toEqual([
      'spec.template.labels', 'spec.template.labels', 'spec.completions', 'spec.template.spec.containers[0].name',
      'spec.template.spec.containers[0].resources.requests', 'spec.template.spec.restartPolicy'
    ])
    expect(statusOf(() => a.create('jobs', 'default', { metadata: { name: 'y' }, spec: { parallelism: 'two' } }))).toMatchObject({ code: 400, message: 'Job in version "v1" cannot be handled as a Job: json: cannot unmarshal string into Go struct field Job.spec.parallelism of type int32' })
    expect(statusOf(() => a.create('jobs', 'default', { metadata: { name: 'v' }, spec: { template: { spec: { restartPolicy: 'Never', volumes: [{ name: 'v' }], containers: [{ name: 'main', image: 'zp:1' }] } } } }))).toMatchObject({ code: 422, message: 'Job.batch "v" is invalid: spec.template.spec.volumes: Forbidden: fake-k8s does not implement this field (a real API server accepts it)' })
  })

  it('keeps a bounded history: a watch from a resourceVersion it no longer holds is told 410', () => {
    const store = new Store()
    const first = Number(store.resourceVersion)
    for (let i = 0; i < 10_001; i++) store.create('secrets', { metadata: { name: `s${i}`, namespace: 'default' } })
    expect(store.since(first)).toBeUndefined()
    expect(store.since(Number(store.resourceVersion) - 2)?.map(e => e.object.metadata.name)).toEqual(['s9999', 's10000'])
  })

  it('orphans a Job\'s pods on a DELETE without a propagation policy, and deletes an unscheduled pod at once', () => {
    const { api: a, store } = api()
    const job = a.create<Job>('jobs', 'default', { metadata: { name: 'j' }, spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'zp:1' }] } } } })
    const owner = { apiVersion: 'batch/v1', kind: 'Job', name: 'j', uid: job.metadata.uid!, controller: true, blockOwnerDeletion: true }
    a.create('pods', 'default', { metadata: { name: 'p', ownerReferences: [owner] }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'zp:1' }] } })
    a.delete('jobs', 'default', 'j', {})
    expect(store.get('jobs', 'default', 'j')).toBeUndefined()
    expect(store.get<Pod>('pods', 'default', 'p')?.metadata.ownerReferences).toBeUndefined()
    a.delete('pods', 'default', 'p', {})
    expect(store.get('pods', 'default', 'p')).toBeUndefined()
  })
})
