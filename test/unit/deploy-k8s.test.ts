import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as k8s from '@kubernetes/client-node'
import * as appsV1 from 'kubernetes-models/apps/v1'
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1'
import * as coreV1 from 'kubernetes-models/v1'
import { parseAllDocuments } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RBAC_RULES } from '../../bootstrap/k8s/errors.ts'
import { PSK_ENV, PSK_KEY } from '../../bootstrap/k8s/manifest.ts'
import { generatePskFile, loadPskEnv } from '../../node/psk.ts'
import { DEFAULT_LISTEN } from '../../node/options.ts'
import { tempDir } from '../helpers.ts'
import { parseNodeCommand, parseZpNode, type ZpNodeCall } from './zp-node-argv.ts'

// deploy/k8s as a cluster would take it: every object against the API's schemas (kubernetes-models for types and
// required fields, @kubernetes/client-node's model maps for unknown keys), and every command line through the
// real zp-node parser after Kubernetes' own $(VAR) expansion. No API server runs here (../shared/CLUSTERS.md).

const DIR = fileURLToPath(new URL('../../deploy/k8s/', import.meta.url))
/** applied by hand, never by `kubectl apply -k` (it holds a placeholder key) */
const SECRET_TEMPLATE = 'secret-psk.yaml'

type Json = Record<string, any>
interface K8sObject extends Json { apiVersion: string, kind: string, metadata: Json }

const files = new Map<string, K8sObject[]>()
let kustomization: Json
let pskText: string
let scratch: { path: string, remove: () => Promise<void> }

beforeAll(async () => {
  for (const name of (await readdir(DIR)).filter(f => f.endsWith('.yaml')).sort()) {
    const docs = parseAllDocuments(await readFile(join(DIR, name), 'utf8'))
    if (!Array.isArray(docs)) throw new Error(`${name}: no YAML documents`)
    for (const doc of docs) if (doc.errors.length > 0) throw new Error(`${name}: ${doc.errors[0]!.message}`)
    const objects = docs.map(d => d.toJS() as K8sObject).filter(o => o != null)
    if (name === 'kustomization.yaml') kustomization = objects[0]!
    else files.set(name, objects)
  }
  scratch = await tempDir('zp-deploy-k8s-')
  pskText = new TextDecoder().decode((await generatePskFile(join(scratch.path, 'mesh.key'))).bytes)
})
afterAll(async () => { await scratch.remove() })

const all = (): K8sObject[] => [...files.values()].flat()
function one (kind: string, name?: string): K8sObject {
  const found = all().filter(o => o.kind === kind && (name == null || o.metadata.name === name))
  if (found.length !== 1) throw new Error(`expected one ${kind}${name != null ? ` ${name}` : ''} in deploy/k8s, found ${found.length}`)
  return found[0]!
}
const workloads = (): K8sObject[] => all().filter(o => o.kind === 'StatefulSet' || o.kind === 'DaemonSet')

const MODELS: Record<string, Record<string, unknown>> = { v1: coreV1, 'apps/v1': appsV1, 'rbac.authorization.k8s.io/v1': rbacV1 }

/** kubernetes-models' check: types, formats, required fields (not unknown keys) */
function validateWithModels (obj: K8sObject): void {
  const Model = MODELS[obj.apiVersion]?.[obj.kind] as (new (data: unknown) => { validate: () => void }) | undefined
  if (Model == null) throw new Error(`no kubernetes-models class for ${obj.apiVersion} ${obj.kind}: add its group to MODELS`)
  new Model(obj).validate()
}

type AttributeMap = Array<{ baseName: string, type: string }>
function attributesOf (type: string): AttributeMap | undefined {
  return ((k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap } | undefined>)[type])?.getAttributeTypeMap?.()
}

/**
 * Paths of keys the API's schema does not have, walking the generated models' attribute maps: kubernetes-models
 * lets unknown keys through, and the API server drops them (or refuses them under strict field validation).
 */
function unknownKeys (value: unknown, type: string, path: string): string[] {
  const array = /^Array<(.+)>$/.exec(type)
  if (array != null) return Array.isArray(value) ? value.flatMap((v, i) => unknownKeys(v, array[1]!, `${path}[${i}]`)) : []
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map != null) return Object.entries(value as Json ?? {}).flatMap(([k, v]) => unknownKeys(v, map[1]!, `${path}.${k}`))
  const attributes = attributesOf(type)
  // a scalar (string, number, IntOrString, any): kubernetes-models checks its type
  if (attributes == null || typeof value !== 'object' || value == null) return []
  const known = new Map(attributes.map(a => [a.baseName, a.type]))
  return Object.entries(value).flatMap(([k, v]) => known.has(k) ? unknownKeys(v, known.get(k)!, `${path}.${k}`) : [`${path}.${k}`])
}
function unknownKeysOf (obj: K8sObject): string[] {
  const type = `V1${obj.kind}`
  if (!obj.apiVersion.endsWith('v1') || attributesOf(type) == null) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`)
  return unknownKeys(obj, type, obj.kind)
}

const SAMPLE = { podIP: '10.244.3.17', nodeName: 'gpu-node-7.lab.example' }

/** Cores in a CPU quantity, rounded up as the downward API does with divisor 1. */
function cpuEnv (limit: string): string {
  return String(Math.ceil(limit.endsWith('m') ? Number(limit.slice(0, -1)) / 1000 : Number(limit)))
}

/** The container's environment as the kubelet builds it for pod `podName`. */
function envOf (container: Json, podName: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const e of container.env as Json[]) {
    if (e.value != null) env[e.name] = e.value
    else if (e.valueFrom?.fieldRef != null) {
      const values: Record<string, string> = { 'metadata.name': podName, 'metadata.namespace': kustomization.namespace, 'status.podIP': SAMPLE.podIP, 'spec.nodeName': SAMPLE.nodeName }
      const v = values[e.valueFrom.fieldRef.fieldPath]
      if (v == null) throw new Error(`env ${e.name}: fieldPath ${e.valueFrom.fieldRef.fieldPath} is not one the test knows`)
      env[e.name] = v
    } else if (e.valueFrom?.resourceFieldRef != null) {
      const ref = e.valueFrom.resourceFieldRef
      expect([ref.resource, ref.divisor]).toEqual(['limits.cpu', '1'])
      env[e.name] = cpuEnv(container.resources.limits.cpu)
    } else if (e.valueFrom?.secretKeyRef != null) {
      env[e.name] = pskText
    } else throw new Error(`env ${e.name}: no value the test knows how to fill`)
  }
  return env
}

/** Kubernetes' expansion of command and args: $(NAME) from the container's env, $$ for a $; an unknown name is a mistake here. */
function expand (text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string | undefined) => {
    if (name == null) return '$'
    const v = env[name]
    if (v == null) throw new Error(`'${text}' names $(${name}), which the container's env does not define`)
    return v
  })
}

/** What the container's process gets as its zp-node argv (every container runs zp-node itself, no shell). */
function zpNodeArgv (container: Json, podName: string): string[] {
  const env = envOf(container, podName)
  const argv = [...container.command as string[], ...(container.args as string[] ?? [])].map(a => expand(a, env))
  if (argv[0] !== 'zp-node') throw new Error(`the container runs ${argv[0]}, not zp-node`)
  return argv.slice(1)
}

function podSpec (workload: K8sObject): Json {
  return workload.spec.template.spec
}

describe('deploy/k8s manifests', () => {
  it('parse, and every object passes the Kubernetes schemas with no unknown key', () => {
    expect([...files.keys()]).toEqual(['bootstrap.yaml', 'bridge-rbac.yaml', 'gpu-daemonset.yaml', 'namespace.yaml', SECRET_TEMPLATE])
    for (const obj of all()) {
      validateWithModels(obj)
      expect(unknownKeysOf(obj), `${obj.kind} ${obj.metadata.name}`).toEqual([])
    }
  })

  it('fail the key check on a misspelled field, which kubernetes-models alone lets through', () => {
    const sts = structuredClone(one('StatefulSet'))
    sts.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true
    sts.spec.template.spec.containers[0].env[0].valueFrom.feildRef = { fieldPath: 'metadata.name' }
    validateWithModels(sts)
    expect(unknownKeysOf(sts)).toEqual([
      'StatefulSet.spec.template.spec.containers[0].env[0].valueFrom.feildRef',
      'StatefulSet.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem'
    ])
    const svc = structuredClone(one('Service'))
    svc.spec.publishNotReadyAddress = true
    expect(unknownKeysOf(svc)).toEqual(['Service.spec.publishNotReadyAddress'])
  })

  it('live in the kustomization\'s namespace, and kustomization.yaml lists every file but the key template', () => {
    expect(Object.keys(kustomization).sort()).toEqual(['apiVersion', 'images', 'kind', 'labels', 'namespace', 'resources'])
    expect([kustomization.apiVersion, kustomization.kind]).toEqual(['kustomize.config.k8s.io/v1beta1', 'Kustomization'])
    expect([...kustomization.resources].sort()).toEqual([...files.keys()].filter(f => f !== SECRET_TEMPLATE))
    expect(one('Namespace').metadata.name).toBe(kustomization.namespace)
    for (const obj of all().filter(o => o.kind !== 'Namespace')) expect(obj.metadata.namespace, `${obj.kind} ${obj.metadata.name}`).toBe(kustomization.namespace)
    // the image override reaches every container
    const images = workloads().flatMap(w => podSpec(w).containers.map((c: Json) => c.image))
    expect(new Set(images)).toEqual(new Set(kustomization.images.map((i: Json) => i.name)))
  })

  it('the bootstrap StatefulSet has its headless Service, stable names and a volume per pod', () => {
    const sts = one('StatefulSet')
    const svc = one('Service', sts.spec.serviceName)
    expect(svc.spec.clusterIP).toBe('None')
    const labels = sts.spec.template.metadata.labels
    expect(labels).toMatchObject(sts.spec.selector.matchLabels)
    expect(labels).toMatchObject(svc.spec.selector)
    const port = podSpec(sts).containers[0].ports.find((p: Json) => p.name === svc.spec.ports[0].targetPort)
    expect(port.containerPort).toBe(svc.spec.ports[0].port)
    expect(sts.spec.volumeClaimTemplates.map((v: Json) => v.metadata.name)).toContain('data')
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(2)
  })

  it('every bootstrap pod joins through all of them by their stable names (a node skips its own), with flags the real zp-node accepts', async () => {
    const sts = one('StatefulSet')
    const svc = one('Service', sts.spec.serviceName)
    const container = podSpec(sts).containers[0]
    expect(container.command).toEqual(['zp-node'])
    const stable = Array.from({ length: sts.spec.replicas }, (_, i) => `${sts.metadata.name}-${i}.${svc.metadata.name}.${kustomization.namespace}.svc:${svc.spec.ports[0].port}`)
    const calls = await Promise.all([0, 1, 2].map(async i => await parseNodeCommand(zpNodeArgv(container, `${sts.metadata.name}-${i}`))))
    for (const call of calls) {
      expect(call.command).toEqual(['join'])
      expect(call.args).toEqual(stable)
      expect({ ...call.opts, name: undefined }).toEqual({ ...calls[0]!.opts, name: undefined })
    }
    expect(calls.map(c => c.opts.name)).toEqual([0, 1, 2].map(i => `${sts.metadata.name}-${i}`))
    expectNodeFlags(calls[0]!, container)
  })

  it('the GPU DaemonSet selects GPU machines, asks for a GPU and joins the bootstrap Service', async () => {
    const ds = one('DaemonSet')
    const svc = one('Service', one('StatefulSet').spec.serviceName)
    const spec = podSpec(ds)
    expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels)
    expect(spec.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' })
    const container = spec.containers[0]
    expect(Number(container.resources.limits['nvidia.com/gpu'])).toBeGreaterThanOrEqual(1)
    expect(container.command).toEqual(['zp-node'])
    const call = await parseNodeCommand(zpNodeArgv(container, 'zp-gpu-x7k2p'))
    expect(call.command).toEqual(['join'])
    expect(call.args).toEqual([`${svc.metadata.name}.${kustomization.namespace}.svc:${svc.spec.ports[0].port}`])
    expect(call.opts.name).toBe(`gpu-${SAMPLE.nodeName}`)
    expect(call.opts.label).toMatchObject({ 'k8s.node': SAMPLE.nodeName })
    expectNodeFlags(call, container)
  })

  it('every exec probe is a zp-node command the CLI accepts', async () => {
    for (const w of workloads()) {
      const container = podSpec(w).containers[0]
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const exec = container[probe]?.exec
        if (exec == null) continue
        expect(exec.command[0]).toBe('zp-node')
        const call: ZpNodeCall = await parseZpNode(exec.command.slice(1))
        expect(call.command).toEqual(['status'])
        expect(call.opts.dataDir).toBe(dataMount(container))
      }
    }
  })

  it('the key comes from the Secret that secret-psk.yaml and the bridge name, and the template holds no usable key', () => {
    const secret = one('Secret')
    expect(files.get(SECRET_TEMPLATE)).toEqual([secret])
    expect(Object.keys(secret.stringData)).toEqual([PSK_KEY])
    expect(() => loadPskEnv(PSK_ENV, { [PSK_ENV]: secret.stringData[PSK_KEY] })).toThrow(/not a libp2p swarm key/)
    // what `kubectl create secret generic --from-file=psk=mesh.key` puts there is taken as it is
    expect(loadPskEnv(PSK_ENV, { [PSK_ENV]: pskText }).fingerprint).toMatch(/^[0-9a-f]{16}$/)
    for (const w of workloads()) {
      const env = podSpec(w).containers[0].env.find((e: Json) => e.name === PSK_ENV)
      expect(env?.valueFrom?.secretKeyRef, w.kind).toEqual({ name: secret.metadata.name, key: PSK_KEY })
    }
  })

  it('pods run as the restricted Pod Security Standard asks, writing only to volumes', () => {
    for (const w of workloads()) {
      const spec = podSpec(w)
      expect(spec.securityContext, w.kind).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } })
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0)
      expect(spec.hostNetwork ?? false).toBe(false)
      expect(spec.volumes.filter((v: Json) => v.hostPath != null)).toEqual([])
      for (const c of spec.containers) {
        expect(c.securityContext, w.kind).toEqual({ runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
        expect(c.volumeMounts.map((m: Json) => m.mountPath)).toEqual(expect.arrayContaining([dataMount(c), '/tmp']))
        for (const kind of ['requests', 'limits']) expect(Object.keys(c.resources[kind]), `${w.kind} ${kind}`).toEqual(expect.arrayContaining(['cpu', 'memory']))
        expect(c.ports.every((p: Json) => p.hostPort == null)).toBe(true)
      }
    }
  })

  it('the bridge\'s Role allows what `zp bridge k8s` does, bound to the bootstrap pods\' ServiceAccount', () => {
    const sa = one('ServiceAccount')
    const role = one('Role')
    const binding = one('RoleBinding')
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name })
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: kustomization.namespace }])
    expect(podSpec(one('StatefulSet')).serviceAccountName).toBe(sa.metadata.name)
    expect(podSpec(one('DaemonSet')).automountServiceAccountToken).toBe(false)
    // exactly what the bridge calls: nothing it needs is missing, and no more (a Role that reads every Secret is a leak)
    const granted = role.rules.flatMap((r: Json) => r.apiGroups.flatMap((g: string) => r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}/${res}:${v}`)))).sort()
    const needed = RBAC_RULES.flatMap(r => r.verbs.map(v => `${r.apiGroup}/${r.resource}:${v}`)).sort()
    expect(granted).toEqual(needed)
  })
})

/** The data volume's mount, which every zp-node command of the container must name. */
function dataMount (container: Json): string {
  return container.volumeMounts.find((m: Json) => m.name === 'data').mountPath
}

/** What every always-on node needs, whichever workload runs it. */
function expectNodeFlags (call: ZpNodeCall, container: Json): void {
  const port = container.ports.find((p: Json) => p.name === 'mesh').containerPort
  expect(DEFAULT_LISTEN.endsWith(`/tcp/${port}`)).toBe(true)
  expect(call.opts).toMatchObject({
    dataDir: dataMount(container),
    listen: [`/ip4/0.0.0.0/tcp/${port}`],
    announce: [`/ip4/${SAMPLE.podIP}/tcp/${port}`],
    pskEnv: PSK_ENV,
    trustMesh: true,
    slots: Number(cpuEnv(container.resources.limits.cpu))
  })
  // the control API stays on, on loopback: the liveness probe and `kubectl exec … zp` use it
  expect(call.opts.api).toBeUndefined()
  expect(container.env.find((e: Json) => e.name === 'ZP_DATA_DIR')?.value).toBe(dataMount(container))
}
