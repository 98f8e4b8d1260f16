import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BatchV1Api, CoreV1Api, KubeConfig, type V1EnvVar, type V1Job, type V1JobSpec, type V1Pod } from '@kubernetes/client-node'
import { startFakeK8s, type FakeK8s } from '../clusters/fake-k8s/index.ts'
import { tempDir, waitFor } from '../helpers.ts'

// The fake Kubernetes API server's Job controller and kubelet, driven by the
// real @kubernetes/client-node: pods are real local processes.
const IMAGE = 'registry.example/zp-node:test'
const NS = 'default'
let fake: FakeK8s
let kc: KubeConfig
let batch: BatchV1Api
let core: CoreV1Api
let image: Awaited<ReturnType<typeof tempDir>>
let gates: Awaited<ReturnType<typeof tempDir>>

beforeAll(async () => {
  image = await tempDir('zp-fake-image-')
  // the image's contents: a program found on the container's PATH
  await writeFile(join(image.path, 'hello'), '#!/bin/sh\necho "hello from the image: $*"\n', { mode: 0o755 })
  gates = await tempDir('zp-fake-gates-')
  fake = await startFakeK8s({ images: { [IMAGE]: image.path } })
  kc = new KubeConfig()
  kc.loadFromFile(fake.kubeconfig)
  batch = kc.makeApiClient(BatchV1Api)
  core = kc.makeApiClient(CoreV1Api)
})

afterAll(async () => {
  await fake?.stop()
  await image?.remove()
  await gates?.remove()
})

/** a file the pod's script waits for: the test decides when the pods finish */
function gate (name: string): { env: V1EnvVar, wait: string, open: () => Promise<void> } {
  const path = join(gates.path, name)
  return { env: { name: 'GATE', value: path }, wait: 'until [ -e "$GATE" ]; do sleep 0.05; done', open: async () => { await writeFile(path, '') } }
}

function job (name: string, script: string, spec: Partial<V1JobSpec> = {}, env: V1EnvVar[] = [], graceSeconds?: number): V1Job {
  return {
    metadata: { name },
    spec: {
      ...spec,
      template: {
        spec: {
          restartPolicy: 'Never',
          ...(graceSeconds === undefined ? {} : { terminationGracePeriodSeconds: graceSeconds }),
          containers: [{ name: 'main', image: IMAGE, command: ['sh', '-c', script], env }]
        }
      }
    }
  }
}

async function podsOf (jobName: string, fieldSelector?: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: NS, labelSelector: `batch.kubernetes.io/job-name=${jobName}`, ...(fieldSelector === undefined ? {} : { fieldSelector }) })).items
}

async function finishedJob (name: string): Promise<V1Job> {
  return await waitFor(async () => {
    const j = await batch.readNamespacedJob({ name, namespace: NS })
    return j.status?.conditions?.some(c => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True') === true ? j : undefined
  }, { what: `job ${name} to finish` })
}

const conditionTypes = (j: V1Job): Array<[string, string | undefined]> => (j.status?.conditions ?? []).map(c => [c.type, c.reason])
const indexOf = (p: V1Pod): string | undefined => p.metadata?.annotations?.['batch.kubernetes.io/job-completion-index']

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('fake Kubernetes: Jobs run as local processes', () => {
  it('an Indexed Job of 2 runs pods <job>-<i>-xxxxx with JOB_COMPLETION_INDEX and a Secret, then completes', async () => {
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'mesh-psk' }, stringData: { psk: 's3cret' } } })
    const g = gate('pair')
    const psk: V1EnvVar = { name: 'PSK', valueFrom: { secretKeyRef: { name: 'mesh-psk', key: 'psk' } } }
    const created = await batch.createNamespacedJob({ namespace: NS, body: job('pair', `echo "index=$JOB_COMPLETION_INDEX psk=$PSK host=$HOSTNAME"; ${g.wait}; hello done`, { completionMode: 'Indexed', completions: 2, parallelism: 2 }, [psk, g.env]) })

    const running = await waitFor(async () => { const p = await podsOf('pair', 'status.phase=Running'); return p.length === 2 ? p : undefined }, { what: 'two running pods' })
    running.sort((a, b) => Number(indexOf(a)) - Number(indexOf(b)))
    for (const [i, pod] of running.entries()) {
      expect(pod.metadata?.name).toMatch(new RegExp(`^pair-${i}-[bcdfghjklmnpqrstvwxz2456789]{5}$`))
      expect(pod.metadata?.labels).toMatchObject({ 'batch.kubernetes.io/job-name': 'pair', 'job-name': 'pair', 'controller-uid': created.metadata?.uid, 'batch.kubernetes.io/job-completion-index': String(i) })
      expect(pod.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'Job', name: 'pair', uid: created.metadata?.uid, controller: true })])
      expect(pod.spec?.containers[0]?.env).toContainEqual({ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } })
      expect(pod.status?.podIP).toBe('127.0.0.1')
      expect(alive(fake.pid(NS, pod.metadata!.name!)!)).toBe(true)
      const log = await waitFor(async () => { const l = await core.readNamespacedPodLog({ name: pod.metadata!.name!, namespace: NS }); return l.includes('index=') ? l : undefined })
      expect(log).toBe(`index=${i} psk=s3cret host=pair-${i}\n`)
    }
    expect((await waitFor(async () => { const j = await batch.readNamespacedJob({ name: 'pair', namespace: NS }); return j.status?.ready === 2 ? j : undefined })).status).toMatchObject({ active: 2, ready: 2 })

    await g.open()
    const done = await finishedJob('pair')
    expect(conditionTypes(done)).toEqual([['SuccessCriteriaMet', 'CompletionsReached'], ['Complete', 'CompletionsReached']])
    expect(done.status).toMatchObject({ succeeded: 2, completedIndexes: '0-1', ready: 0 })
    expect(done.status?.active).toBeUndefined()
    expect(done.status?.completionTime).toBeInstanceOf(Date)
    const finished = await podsOf('pair')
    expect(finished.map(p => p.status?.phase)).toEqual(['Succeeded', 'Succeeded'])
    expect(finished.map(p => p.status?.containerStatuses?.[0]?.state?.terminated)).toEqual([expect.objectContaining({ exitCode: 0, reason: 'Completed' }), expect.objectContaining({ exitCode: 0, reason: 'Completed' })])
    expect(await core.readNamespacedPodLog({ name: finished[0]!.metadata!.name!, namespace: NS, tailLines: 1 })).toBe('hello from the image: done\n')
  })

  it('an evicted pod under an Ignore rule for DisruptionTarget is replaced at its index and not counted; a plain DELETE is no disruption (as on a real server) and counts', async () => {
    const g = gate('disrupted')
    await batch.createNamespacedJob({
      namespace: NS,
      body: job('disrupted', g.wait, { completionMode: 'Indexed', completions: 1, backoffLimitPerIndex: 0, podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] } }, [g.env])
    })
    const [first] = await waitFor(async () => { const p = await podsOf('disrupted', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    const firstPid = fake.pid(NS, first!.metadata!.name!)!
    await core.createNamespacedPodEviction({ name: first!.metadata!.name!, namespace: NS, body: { metadata: { name: first!.metadata!.name!, namespace: NS } } })

    const [second] = await waitFor(async () => { const p = (await podsOf('disrupted', 'status.phase=Running')).filter(p => p.metadata?.name !== first!.metadata?.name); return p.length === 1 ? p : undefined }, { what: 'a replacement pod' })
    expect(indexOf(second!)).toBe('0')
    expect(second!.metadata?.name).toMatch(/^disrupted-0-/)
    expect(alive(firstPid)).toBe(false)
    await expect(core.readNamespacedPod({ name: first!.metadata!.name!, namespace: NS })).rejects.toMatchObject({ code: 404 })
    // a second eviction (a drain): still not counted
    await core.createNamespacedPodEviction({ name: second!.metadata!.name!, namespace: NS, body: { metadata: { name: second!.metadata!.name!, namespace: NS } } })
    const [third] = await waitFor(async () => { const p = (await podsOf('disrupted', 'status.phase=Running')).filter(p => p.metadata?.name !== second!.metadata?.name); return p.length === 1 ? p : undefined }, { what: 'a second replacement' })
    expect(third!.metadata?.annotations).toMatchObject({ 'batch.kubernetes.io/job-completion-index': '0', 'batch.kubernetes.io/job-index-failure-count': '0', 'batch.kubernetes.io/job-index-ignored-failure-count': '2' })
    const during = await batch.readNamespacedJob({ name: 'disrupted', namespace: NS })
    expect(during.status?.failed).toBeUndefined()
    expect(during.status?.failedIndexes).toBe('')
    await g.open()
    expect(conditionTypes(await finishedJob('disrupted')).at(-1)).toEqual(['Complete', 'CompletionsReached'])

    // a plain DELETE gets no DisruptionTarget, so the same Ignore rule does not cover it: it counts against backoffLimit
    await batch.createNamespacedJob({ namespace: NS, body: job('counted', 'sleep 30', { backoffLimit: 0, podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] } }) })
    const [pod] = await waitFor(async () => { const p = await podsOf('counted', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    await core.deleteNamespacedPod({ name: pod!.metadata!.name!, namespace: NS })
    const failed = await finishedJob('counted')
    expect(conditionTypes(failed)).toEqual([['FailureTarget', 'BackoffLimitExceeded'], ['Failed', 'BackoffLimitExceeded']])
    expect(failed.status?.failed).toBe(1)
  })

  it('a failure under backoffLimitPerIndex 0 fails its index only; FailJob and activeDeadlineSeconds fail the Job with their reasons', async () => {
    await batch.createNamespacedJob({ namespace: NS, body: job('per-index', 'exit $JOB_COMPLETION_INDEX', { completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimitPerIndex: 0 }) })
    const failed = await finishedJob('per-index')
    expect(conditionTypes(failed)).toEqual([['FailureTarget', 'FailedIndexes'], ['Failed', 'FailedIndexes']])
    expect(failed.status).toMatchObject({ failed: 1, succeeded: 1, completedIndexes: '0', failedIndexes: '1' })
    expect((await podsOf('per-index')).length).toBe(2)

    await batch.createNamespacedJob({ namespace: NS, body: job('fail-job', 'exit 42', { backoffLimit: 6, podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }] } }) })
    const byRule = await finishedJob('fail-job')
    const [pod] = await podsOf('fail-job')
    expect(byRule.status?.conditions?.at(-1)).toMatchObject({ type: 'Failed', reason: 'PodFailurePolicy', message: `Container main for pod ${NS}/${pod!.metadata!.name} failed with exit code 42 matching FailJob rule at index 0` })

    await batch.createNamespacedJob({ namespace: NS, body: job('deadline', 'sleep 30', { activeDeadlineSeconds: 1 }) })
    const late = await finishedJob('deadline')
    expect(conditionTypes(late)).toEqual([['FailureTarget', 'DeadlineExceeded'], ['Failed', 'DeadlineExceeded']])
    expect((await podsOf('deadline')).every(p => p.status?.phase === 'Failed')).toBe(true)
  })

  it('deleting a Job without a propagation policy orphans its pods; Background and Foreground take them, processes and all', async () => {
    await batch.createNamespacedJob({ namespace: NS, body: job('orphaned', 'sleep 30') })
    const [orphan] = await waitFor(async () => { const p = await podsOf('orphaned', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    await batch.deleteNamespacedJob({ name: 'orphaned', namespace: NS })
    await waitFor(async () => (await batch.listNamespacedJob({ namespace: NS, fieldSelector: 'metadata.name=orphaned' })).items.length === 0)
    const left = await core.readNamespacedPod({ name: orphan!.metadata!.name!, namespace: NS })
    expect(left.metadata?.ownerReferences).toBeUndefined()
    expect(left.status?.phase).toBe('Running')
    expect(alive(fake.pid(NS, orphan!.metadata!.name!)!)).toBe(true)
    await core.deleteNamespacedPod({ name: orphan!.metadata!.name!, namespace: NS, gracePeriodSeconds: 0 })

    const background = await batch.createNamespacedJob({ namespace: NS, body: job('background', 'sleep 30') })
    // a Secret the Job owns goes with it, as the garbage collector takes any dependent
    const owner = { apiVersion: 'batch/v1', kind: 'Job', name: 'background', uid: background.metadata!.uid! }
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'background-psk', ownerReferences: [owner] }, stringData: { psk: 'x' } } })
    const [bg] = await waitFor(async () => { const p = await podsOf('background', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    const bgPid = fake.pid(NS, bg!.metadata!.name!)!
    await batch.deleteNamespacedJob({ name: 'background', namespace: NS, propagationPolicy: 'Background' })
    await waitFor(async () => (await podsOf('background')).length === 0, { what: 'the Job\'s pods to go' })
    expect(alive(bgPid)).toBe(false)
    expect(fake.secrets(NS).map(s => s.metadata?.name)).not.toContain('background-psk')
    // and one whose owner is already gone is collected at once
    await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'dangling', ownerReferences: [owner] }, stringData: { psk: 'x' } } })
    await waitFor(() => !fake.secrets(NS).some(s => s.metadata?.name === 'dangling'), { what: 'the dangling Secret to be collected' })

    // a container that ignores SIGTERM holds the Job for its grace period, then is killed
    await batch.createNamespacedJob({ namespace: NS, body: job('foreground', 'trap "" TERM; echo trapped; while :; do sleep 0.05; done', {}, [], 2) })
    const [fg] = await waitFor(async () => { const p = await podsOf('foreground', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    // Running is said once the process starts; SIGTERM before the shell set its trap would end it at once
    await waitFor(async () => (await core.readNamespacedPodLog({ name: fg!.metadata!.name!, namespace: NS })).includes('trapped'), { what: 'the container to ignore SIGTERM' })
    const fgPid = fake.pid(NS, fg!.metadata!.name!)!
    await batch.deleteNamespacedJob({ name: 'foreground', namespace: NS, body: { propagationPolicy: 'Foreground' } })
    const held = await batch.readNamespacedJob({ name: 'foreground', namespace: NS })
    expect(held.metadata?.finalizers).toEqual(['foregroundDeletion'])
    expect(held.metadata?.deletionTimestamp).toBeInstanceOf(Date)
    const terminating = await core.readNamespacedPod({ name: fg!.metadata!.name!, namespace: NS })
    expect(terminating.metadata?.deletionGracePeriodSeconds).toBe(2)
    expect(alive(fgPid)).toBe(true)
    await waitFor(async () => (await batch.listNamespacedJob({ namespace: NS, fieldSelector: 'metadata.name=foreground' })).items.length === 0, { what: 'the Job to go after its pod' })
    expect(await podsOf('foreground')).toEqual([])
    expect(alive(fgPid)).toBe(false)
  })

  it('pods/log follows a running container to its end; stop() kills every pod process and removes its directory', async () => {
    const g = gate('followed')
    await batch.createNamespacedJob({ namespace: NS, body: job('followed', `echo "cwd=$(pwd)"; ${g.wait}; echo bye`, {}, [g.env]) })
    const [pod] = await waitFor(async () => { const p = await podsOf('followed', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    const name = pod!.metadata!.name!
    const cwd = (await waitFor(async () => /cwd=(\S+)/.exec(await core.readNamespacedPodLog({ name, namespace: NS }))))[1]!
    const followed = await fetch(`${fake.url}/api/v1/namespaces/${NS}/pods/${name}/log?follow=true`, { headers: { authorization: `Bearer ${kc.getCurrentUser()!.token}` } })
    await g.open()
    expect(await followed.text()).toBe(`cwd=${cwd}\nbye\n`)

    await batch.createNamespacedJob({ namespace: NS, body: job('stopped', 'echo "cwd=$(pwd)"; sleep 30') })
    const [last] = await waitFor(async () => { const p = await podsOf('stopped', 'status.phase=Running'); return p.length === 1 ? p : undefined })
    const pid = fake.pid(NS, last!.metadata!.name!)!
    const dir = (await waitFor(async () => /cwd=(\S+)/.exec(await core.readNamespacedPodLog({ name: last!.metadata!.name!, namespace: NS }))))[1]!
    expect(existsSync(dir)).toBe(true)
    await fake.stop()
    expect(alive(pid)).toBe(false)
    expect(existsSync(dir)).toBe(false)
    expect(existsSync(fake.kubeconfig)).toBe(false)
  })
})
