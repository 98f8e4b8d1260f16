import { badRequest, invalid } from './errors.ts'
import { configKey, dns1123Label, dns1123Subdomain, FieldErrors } from './field-errors.ts'
import { RESOURCES, type Resource } from './resources.ts'
import { validateJobSpec } from './validate-job.ts'
import { validatePodSpec } from './validate-pod.ts'
import { validateMeta } from './validate-meta.ts'
import type { Job, KObject, Pod, Secret } from './wire.ts'

/** Validation on create, after defaulting: throws a 422 Status with one cause per field error. */
export function validate (resource: Resource, obj: KObject): void {
  const errs = new FieldErrors()
  validateMeta(obj.metadata, 'metadata', errs, resource === 'namespaces' ? dns1123Label : dns1123Subdomain)
  if (resource === 'pods') validatePodSpec((obj as Pod).spec, 'spec', errs)
  if (resource === 'jobs') validateJobSpec(obj as Job, errs)
  if (resource === 'secrets') validateSecret(obj as Secret, errs)
  if (errs.causes.length > 0) throw invalid(RESOURCES[resource].kind, RESOURCES[resource].group, obj.metadata.name ?? '', errs.causes)
}

const MAX_SECRET_BYTES = 1024 * 1024

function validateSecret (secret: Secret, errs: FieldErrors): void {
  let total = 0
  for (const [k, v] of Object.entries(secret.data ?? {})) {
    for (const m of configKey(k)) errs.invalid('data', k, m)
    // []byte fields are base64 on the wire; anything else fails to unmarshal (400)
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw badRequest(`Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte ${firstBadByte(v)}`)
    total += Buffer.from(v, 'base64').length
  }
  if (total > MAX_SECRET_BYTES) errs.causes.push({ reason: 'FieldValueTooLong', message: `Too long: must have at most ${MAX_SECRET_BYTES} bytes`, field: 'data' })
}

function firstBadByte (v: string): number {
  const i = v.search(/[^A-Za-z0-9+/=]/)
  return i < 0 ? v.length - (v.length % 4) : i
}
