import { badRequest } from './errors.ts'

/**
 * The decoding step before validation: a JSON type the Go structs cannot
 * hold is a 400 (as encoding/json's unmarshal error), not a 422. Only the
 * fields the fake reads are described; nulls are dropped as Go drops them.
 */
type Leaf = 'string' | 'int' | 'bool' | 'object' | 'map' | 'quantities'
type Shape = Leaf | readonly [Shape] | { readonly [field: string]: Shape }

const GO_TYPE: Record<Leaf, string> = { string: 'string', int: 'int32', bool: 'bool', object: 'struct', map: 'map[string]string', quantities: 'map[string]resource.Quantity' }

const META = {
  name: 'string',
  generateName: 'string',
  namespace: 'string',
  labels: 'map',
  annotations: 'map',
  ownerReferences: [{ apiVersion: 'string', kind: 'string', name: 'string', uid: 'string', controller: 'bool', blockOwnerDeletion: 'bool' }],
  finalizers: ['string']
} as const
const KEY_REF = { name: 'string', key: 'string', optional: 'bool' } as const
const CONTAINER = {
  name: 'string',
  image: 'string',
  command: ['string'],
  args: ['string'],
  env: [{ name: 'string', value: 'string', valueFrom: { fieldRef: { fieldPath: 'string', apiVersion: 'string' }, secretKeyRef: KEY_REF, configMapKeyRef: KEY_REF, resourceFieldRef: 'object', fileKeyRef: 'object' } }],
  envFrom: [{ prefix: 'string', secretRef: { name: 'string', optional: 'bool' }, configMapRef: { name: 'string', optional: 'bool' } }],
  resources: { requests: 'quantities', limits: 'quantities' }
} as const
const POD_SPEC = { containers: [CONTAINER], initContainers: [CONTAINER], restartPolicy: 'string', terminationGracePeriodSeconds: 'int', nodeName: 'string', hostname: 'string' } as const

export const SHAPES = {
  Pod: { metadata: META, spec: POD_SPEC },
  Job: {
    metadata: META,
    spec: {
      template: { metadata: META, spec: POD_SPEC },
      parallelism: 'int',
      completions: 'int',
      completionMode: 'string',
      backoffLimit: 'int',
      backoffLimitPerIndex: 'int',
      maxFailedIndexes: 'int',
      activeDeadlineSeconds: 'int',
      ttlSecondsAfterFinished: 'int',
      podFailurePolicy: { rules: [{ action: 'string', onExitCodes: { containerName: 'string', operator: 'string', values: ['int'] }, onPodConditions: [{ type: 'string', status: 'string' }] }] },
      podReplacementPolicy: 'string',
      selector: 'object',
      suspend: 'bool',
      manualSelector: 'bool'
    }
  },
  Secret: { metadata: META, type: 'string', data: 'map', stringData: 'map', immutable: 'bool' },
  Namespace: { metadata: META },
  DeleteOptions: { propagationPolicy: 'string', gracePeriodSeconds: 'int', orphanDependents: 'bool' },
  Eviction: { metadata: META, deleteOptions: { propagationPolicy: 'string', gracePeriodSeconds: 'int', orphanDependents: 'bool' } }
} as const satisfies Record<string, Shape>

/** checks `value` against the kind's shape, dropping nulls in place; throws a 400 Status on a type mismatch */
export function decode (kind: keyof typeof SHAPES, value: unknown): void {
  if (!isObject(value)) throw badRequest(`the object provided is unrecognized (must be of type ${kind}): couldn't get version/kind; json parse error: not a JSON object`)
  check(value, SHAPES[kind], '', kind)
}

function check (value: unknown, shape: Shape, path: string, kind: string): void {
  const fail = (go: string): never => {
    throw badRequest(`${kind} in version "v1" cannot be handled as a ${kind}: json: cannot unmarshal ${jsonType(value)} into Go struct field ${kind}.${path} of type ${go}`)
  }
  if (typeof shape === 'string') {
    const ok = shape === 'string' ? typeof value === 'string'
      : shape === 'int' ? Number.isInteger(value)
        : shape === 'bool' ? typeof value === 'boolean'
          : shape === 'object' ? isObject(value)
            : isObject(value) && Object.values(value).every(v => typeof v === 'string' || (shape === 'quantities' && typeof v === 'number'))
    if (!ok) fail(GO_TYPE[shape])
    return
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return fail('[]' + (typeof shape[0] === 'string' ? GO_TYPE[shape[0] as Leaf] : 'struct'))
    value.forEach((item, i) => { check(item, shape[0], `${path}[${i}]`, kind) })
    return
  }
  if (!isObject(value)) return fail('struct')
  for (const [field, v] of Object.entries(value)) {
    if (v === null) {
      delete value[field]
      continue
    }
    const sub = (shape as Record<string, Shape>)[field]
    if (sub !== undefined) check(v, sub, path === '' ? field : `${path}.${field}`, kind)
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function jsonType (value: unknown): string {
  return Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value === 'object' ? 'object' : typeof value
}
