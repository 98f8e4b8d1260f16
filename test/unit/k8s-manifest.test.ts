import { describe, expect, it } from 'vitest'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { K8sUpSchema, type K8sUp } from '../../protocols/bridge/schema.ts'
import type { JoinCommand } from '../../bootstrap/bridge/engine.ts'
import { cpuCores, jobManifest, jobName, joinCommand, ownedBy, secretManifest, type K8sManifestInput } from '../../bootstrap/k8s/manifest.ts'
import { parseZpNode } from './zp-node-argv.ts'

const BOOT = ['/ip4/10.0.0.1/tcp/4170/p2p/12D3KooWAbc', '/dns4/coord.lab/tcp/4170/p2p/12D3KooWAbc']
const KEY = '/key/swarm/psk/1.0.0/\n/base16/\n' + 'ab'.repeat(32)

function input (up: Partial<K8sUp> = {}, join: Partial<JoinCommand> = {}, psk?: string): K8sManifestInput {
  return {
    id: 'k8s-3f9a2c',
    namespace: 'lab',
    options: K8sUpSchema.parse({ nodes: 3, image: 'ghcr.io/lab/zp-node:0.1.0', ...up }),
    join: { argv: ['/usr/bin/node', '/opt/zp/node/bin/zp-node.mjs'], bootstrap: BOOT, drainMs: 20_000, ...join },
    ...(psk != null ? { psk } : {})
  }
}

/** the value after each occurrence of a flag */
function flagValues (argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => a === flag ? [argv[i + 1]!] : [])
}

describe('k8s manifests: the Indexed Job and the Secret of an allocation', () => {
  it('an Indexed Job of N pods, its failures per index, disruptions not counted, labelled for the bridge; valid against the Kubernetes schema', () => {
    const job = jobManifest(input({ gpus: 1, cpu: '1500m', memory: '4Gi', nodeSelector: { 'nvidia.com/gpu.present': 'true' }, serviceAccount: 'zp', imagePullPolicy: 'IfNotPresent' }, { idleMs: 120_000 }, KEY))
    expect(() => new Job(job as never).validate()).not.toThrow()
    expect(job.metadata).toEqual({
      name: 'zp-3f9a2c',
      namespace: 'lab',
      labels: { 'app.kubernetes.io/name': 'zp-node', 'app.kubernetes.io/managed-by': 'zp-mesh', 'zp.bridge': 'k8s-3f9a2c' }
    })
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 3, parallelism: 3, backoffLimitPerIndex: 3, maxFailedIndexes: 2 })
    expect(job.spec!.podFailurePolicy!.rules).toContainEqual({ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] })
    // a node stopped by a pod deletion drains and exits 143: not the node's failure either
    expect(job.spec!.podFailurePolicy!.rules).toContainEqual({ action: 'Ignore', onExitCodes: { containerName: 'zp-node', operator: 'In', values: [143] } })
    const pod = job.spec!.template.spec!
    expect(pod.restartPolicy).toBe('Never')
    // the node drains in 20 s: Kubernetes must not SIGKILL it before
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(20)
    expect(job.spec!.template.metadata!.labels).toMatchObject({ 'zp.bridge': 'k8s-3f9a2c' })
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' })
    expect(pod.serviceAccountName).toBe('zp')
    const c = pod.containers[0]!
    expect(c).toMatchObject({ name: 'zp-node', image: 'ghcr.io/lab/zp-node:0.1.0', imagePullPolicy: 'IfNotPresent' })
    expect(c.resources).toEqual({ requests: { cpu: '1500m', memory: '4Gi' }, limits: { cpu: '1500m', memory: '4Gi', 'nvidia.com/gpu': '1' } })
    expect(c.env).toContainEqual({ name: 'ZP_BOOTSTRAP', value: BOOT.join(' ') })
    expect(c.env).toContainEqual({ name: 'ZP_PSK', valueFrom: { secretKeyRef: { name: 'zp-3f9a2c-psk', key: 'psk' } } })
  })

  it('the container runs zp-node join itself, with the bridge labels, the index in its name, the key from the env and the idle exit', () => {
    const argv = joinCommand(input({ cpu: '1500m' }, { idleMs: 120_000 }, KEY))
    expect(argv.slice(0, 2 + BOOT.length)).toEqual(['zp-node', 'join', ...BOOT])
    expect(flagValues(argv, '--name')).toEqual(['k8s-3f9a2c-$(JOB_COMPLETION_INDEX)'])
    expect(flagValues(argv, '--label')).toEqual(['bridge=k8s', 'k8s.job=zp-3f9a2c', 'zp.bridge=k8s-3f9a2c'])
    expect(flagValues(argv, '--slots')).toEqual(['2'])
    expect(flagValues(argv, '--psk-env')).toEqual(['ZP_PSK'])
    expect(flagValues(argv, '--exit-when-idle')).toEqual(['120000'])
    expect(flagValues(argv, '--drain-timeout-ms')).toEqual(['20000'])
    // an exit 0 would complete the index: a deleted or evicted pod's node must exit otherwise to be replaced
    expect(flagValues(argv, '--signal-exit-code')).toEqual(['143'])
    expect(flagValues(argv, '--data-dir')[0]).not.toMatch(/^\//)
    expect(argv).toEqual(expect.arrayContaining(['--no-api', '--no-resume']))
    // the coordinator's own paths (its Node, its checkout) mean nothing in an image
    expect(argv.join(' ')).not.toContain('/opt/zp')
  })

  it('zp-node itself accepts the command line, and reads it as meant', async () => {
    const call = await parseZpNode(joinCommand(input({ cpu: '2' }, { idleMs: 1000 }, KEY)).slice(1))
    expect(call.command).toEqual(['join'])
    expect(call.args).toEqual(BOOT)
    expect(call.opts).toMatchObject({
      name: 'k8s-3f9a2c-$(JOB_COMPLETION_INDEX)',
      api: false,
      resume: false,
      slots: 2,
      label: { bridge: 'k8s', 'k8s.job': 'zp-3f9a2c', 'zp.bridge': 'k8s-3f9a2c' },
      pskEnv: 'ZP_PSK',
      exitWhenIdle: 1000,
      signalExitCode: 143
    })
  })

  it('without a key, no Secret is named and no --psk-env given; without resources, none asked for; no idle time, no idle exit', () => {
    const job = jobManifest(input())
    const c = job.spec!.template.spec!.containers[0]!
    expect(c.env!.map(e => e.name)).toEqual(['ZP_BOOTSTRAP'])
    expect(c.resources).toBeUndefined()
    expect(c.command).not.toContain('--psk-env')
    expect(c.command).not.toContain('--exit-when-idle')
    expect(c.command).not.toContain('--slots')
  })

  it('GPUs are limits of the named extended resource; a fractional CPU still gives one slot', () => {
    const job = jobManifest(input({ gpus: 2, gpuResource: 'amd.com/gpu', cpu: '500m' }))
    expect(job.spec!.template.spec!.containers[0]!.resources).toEqual({ requests: { cpu: '500m' }, limits: { cpu: '500m', 'amd.com/gpu': '2' } })
    expect(flagValues(job.spec!.template.spec!.containers[0]!.command!, '--slots')).toEqual(['1'])
  })

  it('one node: no failed index is tolerated', () => {
    expect(jobManifest(input({ nodes: 1 })).spec!.maxFailedIndexes).toBe(0)
  })

  it('the Secret holds the key file\'s text under the key the env names, labelled like the Job; valid against the schema', () => {
    const secret = secretManifest({ ...input({}, {}, KEY), psk: KEY })
    expect(() => new Secret(secret as never).validate()).not.toThrow()
    expect(secret.metadata).toMatchObject({ name: 'zp-3f9a2c-psk', namespace: 'lab', labels: { 'zp.bridge': 'k8s-3f9a2c' } })
    expect(Buffer.from(secret.data!.psk!, 'base64').toString()).toBe(KEY)
  })

  it('the Secret is owned by the created Job (so it is garbage-collected with it)', () => {
    expect(ownedBy({ metadata: { name: 'zp-3f9a2c', uid: 'u-1' } })).toEqual([{ apiVersion: 'batch/v1', kind: 'Job', name: 'zp-3f9a2c', uid: 'u-1', blockOwnerDeletion: false }])
    expect(() => ownedBy({ metadata: { name: 'zp-3f9a2c' } })).toThrow(/uid/)
  })

  it('names and CPU quantities', () => {
    expect(jobName('k8s-00aa11')).toBe('zp-00aa11')
    expect([cpuCores('500m'), cpuCores('2'), cpuCores('1.5'), cpuCores('1k')]).toEqual([0.5, 2, 1.5, 1000])
  })
})
