import { labelValue, qualifiedName, type FieldErrors } from './field-errors.ts'
import type { ObjectMeta } from './wire.ts'

/** ValidateObjectMeta: the name (by the resource's rule; templates have none), labels, annotation keys */
export function validateMeta (meta: ObjectMeta, path: string, errs: FieldErrors, nameRule?: (name: string) => string[]): void {
  const name = meta.name ?? ''
  if (nameRule !== undefined) {
    if (name === '') errs.required(`${path}.name`, 'name or generateName is required')
    else for (const m of nameRule(name)) errs.invalid(`${path}.name`, name, m)
  }
  for (const [k, v] of Object.entries(meta.labels ?? {})) {
    for (const m of qualifiedName(k)) errs.invalid(`${path}.labels`, k, m)
    for (const m of labelValue(v)) errs.invalid(`${path}.labels`, v, m)
  }
  for (const k of Object.keys(meta.annotations ?? {})) {
    for (const m of qualifiedName(k.toLowerCase())) errs.invalid(`${path}.annotations`, k, m)
  }
  // nothing here would ever remove them (no PATCH or PUT for pods and Jobs): an object carrying one could never be deleted
  if ((meta.finalizers ?? []).length > 0) errs.unimplemented(`${path}.finalizers`)
}

