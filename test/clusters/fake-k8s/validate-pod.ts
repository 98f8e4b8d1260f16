import { badRequest } from './errors.ts'
import { configKey, dns1123Label, dns1123Subdomain, qualifiedName, type FieldErrors } from './field-errors.ts'
import { milli, QUANTITY_MESSAGE } from './quantity.ts'
import type { Container, EnvVar, PodSpec } from './wire.ts'

/**
 * ValidatePodSpec for what a Job's template or a Pod carries, with
 * kube-apiserver's field paths and wording. Fields the fake's kubelet does
 * not emulate (volumes, probes, init containers, …) are refused by name
 * rather than silently ignored.
 */
const RESTART_POLICIES = ['Always', 'OnFailure', 'Never']
const ENV_FIELD_PATHS = ['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName', 'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs']
export const SUBSCRIPTED_FIELD = /^metadata\.(labels|annotations)\['(.+)'\]$/
const STANDARD_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage'])
const UNIMPLEMENTED_POD = ['initContainers', 'ephemeralContainers', 'volumes', 'activeDeadlineSeconds', 'affinity', 'readinessGates', 'resourceClaims', 'overhead']
const UNIMPLEMENTED_CONTAINER = ['lifecycle', 'livenessProbe', 'readinessProbe', 'startupProbe', 'volumeMounts', 'volumeDevices', 'workingDir', 'restartPolicy', 'resizePolicy']

export function validatePodSpec (spec: PodSpec, path: string, errs: FieldErrors): void {
  const raw = spec as PodSpec & Record<string, unknown>
  for (const field of UNIMPLEMENTED_POD) {
    if (raw[field] !== undefined && !(Array.isArray(raw[field]) && raw[field].length === 0)) errs.unimplemented(`${path}.${field}`)
  }
  const containers = spec.containers ?? []
  if (containers.length === 0) errs.required(`${path}.containers`)
  // the kubelet runs one process per pod: a second container would be ignored, so it is refused
  if (containers.length > 1) errs.forbidden(`${path}.containers[1]`, 'fake-k8s runs one container per pod (a real API server accepts more)')
  containers.forEach((c, i) => { validateContainer(c, `${path}.containers[${i}]`, errs) })
  if (spec.restartPolicy !== undefined && !RESTART_POLICIES.includes(spec.restartPolicy)) errs.notSupported(`${path}.restartPolicy`, spec.restartPolicy, RESTART_POLICIES)
  errs.nonNegative(`${path}.terminationGracePeriodSeconds`, spec.terminationGracePeriodSeconds)
  if (spec.hostname !== undefined) for (const m of dns1123Label(spec.hostname)) errs.invalid(`${path}.hostname`, spec.hostname, m)
  const selector = raw.nodeSelector
  if (selector !== undefined && (typeof selector !== 'object' || selector === null || Object.values(selector).some(v => typeof v !== 'string'))) errs.invalid(`${path}.nodeSelector`, selector, 'must be a map of strings')
}

function validateContainer (c: Container, path: string, errs: FieldErrors): void {
  const raw = c as Container & Record<string, unknown>
  for (const field of UNIMPLEMENTED_CONTAINER) if (raw[field] !== undefined) errs.unimplemented(`${path}.${field}`)
  if ((c.name ?? '') === '') errs.required(`${path}.name`)
  else for (const m of dns1123Label(c.name)) errs.invalid(`${path}.name`, c.name, m)
  if ((c.image ?? '') === '') errs.required(`${path}.image`)
  else if (c.image!.trim() !== c.image) errs.invalid(`${path}.image`, c.image, 'must not have leading or trailing whitespace')
  c.env?.forEach((e, i) => { validateEnv(e, `${path}.env[${i}]`, errs) })
  c.envFrom?.forEach((from, i) => {
    const p = `${path}.envFrom[${i}]`
    const refs = [from.secretRef, from.configMapRef].filter(r => r !== undefined)
    if (refs.length !== 1) errs.invalid(p, '', refs.length === 0 ? 'must specify one of: `configMapRef` or `secretRef`' : 'may not have more than one field specified at a time')
    for (const [field, ref] of [['secretRef', from.secretRef], ['configMapRef', from.configMapRef]] as const) {
      if (ref !== undefined && (ref.name ?? '') === '') errs.required(`${p}.${field}.name`)
    }
  })
  validateResources(c, `${path}.resources`, errs)
}

function validateEnv (e: EnvVar, path: string, errs: FieldErrors): void {
  if ((e.name ?? '') === '') errs.required(`${path}.name`)
  else if (!/^[\x20-\x3c\x3e-\x7e]+$/.test(e.name)) errs.invalid(`${path}.name`, e.name, "a valid environment variable name must consist only of printable ASCII characters other than '='")
  const from = e.valueFrom
  if (from === undefined) return
  if ((e.value ?? '') !== '') errs.invalid(`${path}.valueFrom`, '', 'may not be specified when `value` is not empty')
  const sources = (['fieldRef', 'resourceFieldRef', 'configMapKeyRef', 'secretKeyRef', 'fileKeyRef'] as const).filter(k => from[k] !== undefined)
  if (sources.length === 0) errs.invalid(`${path}.valueFrom`, '', 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`')
  if (sources.length > 1) errs.invalid(`${path}.valueFrom`, '', 'may not have more than one field specified at a time')
  if (from.resourceFieldRef !== undefined) errs.unimplemented(`${path}.valueFrom.resourceFieldRef`)
  if (from.fileKeyRef !== undefined) errs.unimplemented(`${path}.valueFrom.fileKeyRef`)
  const field = from.fieldRef
  if (field !== undefined) {
    const p = `${path}.valueFrom.fieldRef`
    if ((field.fieldPath ?? '') === '') errs.required(`${p}.fieldPath`)
    else {
      const sub = SUBSCRIPTED_FIELD.exec(field.fieldPath)
      if (sub !== null) for (const m of qualifiedName(sub[2]!)) errs.invalid(`${p}.fieldPath`, field.fieldPath, m)
      else if (!ENV_FIELD_PATHS.includes(field.fieldPath)) errs.notSupported(`${p}.fieldPath`, field.fieldPath, ENV_FIELD_PATHS)
    }
    if (field.apiVersion !== undefined && field.apiVersion !== 'v1') errs.invalid(`${p}.apiVersion`, field.apiVersion, 'only "v1" is supported')
  }
  for (const kind of ['secretKeyRef', 'configMapKeyRef'] as const) {
    const ref = from[kind]
    if (ref === undefined) continue
    const p = `${path}.valueFrom.${kind}`
    if ((ref.name ?? '') === '') errs.required(`${p}.name`)
    else for (const m of dns1123Subdomain(ref.name)) errs.invalid(`${p}.name`, ref.name, m)
    if ((ref.key ?? '') === '') errs.required(`${p}.key`)
    else for (const m of configKey(ref.key)) errs.invalid(`${p}.key`, ref.key, m)
  }
}

/** an extended resource (nvidia.com/gpu): integral, and its request must equal its limit */
const isExtended = (name: string): boolean => name.includes('/') && !name.startsWith('kubernetes.io/') && !name.startsWith('requests.')

function validateResources (c: Container, path: string, errs: FieldErrors): void {
  const requests = c.resources?.requests ?? {}
  const limits = c.resources?.limits ?? {}
  const value = (q: string | number): number => {
    const v = milli(q)
    // resource.Quantity fails to unmarshal: the request is refused before validation, as a 400
    if (v === undefined) throw badRequest(`Container in version "v1" cannot be handled as a Container: ${QUANTITY_MESSAGE}`)
    return v
  }
  for (const [kind, list] of [['requests', requests], ['limits', limits]] as const) {
    for (const [name, q] of Object.entries(list)) {
      const p = `${path}.${kind}[${name}]`
      const v = value(q)
      if (!STANDARD_RESOURCES.has(name) && !name.startsWith('hugepages-') && !isExtended(name)) {
        errs.invalid(p, name, 'must be a standard resource for containers')
      } else if (v < 0) {
        errs.invalid(p, String(q), 'must be greater than or equal to 0')
      } else if (isExtended(name) && v % 1000 !== 0) {
        errs.invalid(p, String(q), 'must be an integer')
      }
    }
  }
  for (const [name, q] of Object.entries(requests)) {
    const limit = limits[name]
    if (isExtended(name) || name.startsWith('hugepages-')) {
      if (limit === undefined) errs.required(`${path}.limits`, 'Limit must be set for non overcommitable resources')
      else if (value(q) !== value(limit)) errs.invalid(`${path}.requests`, String(q), `must be equal to ${name} limit of ${String(limit)}`)
    } else if (limit !== undefined && value(q) > value(limit)) {
      errs.invalid(`${path}.requests`, String(q), `must be less than or equal to ${name} limit of ${String(limit)}`)
    }
  }
}
