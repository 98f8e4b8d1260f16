import type { StatusCause } from './errors.ts'

/**
 * Field errors worded as k8s.io/apimachinery's field.ErrorList prints them;
 * each becomes one `details.causes` entry of a 422.
 */
export class FieldErrors {
  readonly causes: StatusCause[] = []

  required (field: string, detail = ''): void {
    this.causes.push({ reason: 'FieldValueRequired', message: detail === '' ? 'Required value' : `Required value: ${detail}`, field })
  }

  invalid (field: string, value: unknown, detail: string): void {
    this.causes.push({ reason: 'FieldValueInvalid', message: `Invalid value: ${show(value)}: ${detail}`, field })
  }

  notSupported (field: string, value: unknown, supported: readonly string[]): void {
    this.causes.push({ reason: 'FieldValueNotSupported', message: `Unsupported value: ${show(value)}: supported values: ${supported.map(s => `"${s}"`).join(', ')}`, field })
  }

  forbidden (field: string, detail: string): void {
    this.causes.push({ reason: 'FieldValueForbidden', message: `Forbidden: ${detail}`, field })
  }

  duplicate (field: string, value: unknown): void {
    this.causes.push({ reason: 'FieldValueDuplicate', message: `Duplicate value: ${show(value)}`, field })
  }

  /** a field kube-apiserver accepts but this fake does not emulate: refused so a test never passes on a silently ignored setting */
  unimplemented (field: string): void {
    this.forbidden(field, 'fake-k8s does not implement this field (a real API server accepts it)')
  }

  nonNegative (field: string, value: number | undefined): void {
    if (value !== undefined && value < 0) this.invalid(field, value, 'must be greater than or equal to 0')
  }
}

function show (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value)
}

const LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?'
const LABEL_RE = new RegExp(`^${LABEL}$`)
const SUBDOMAIN_RE = new RegExp(`^${LABEL}(\\.${LABEL})*$`)
const LABEL_MSG = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
const SUBDOMAIN_MSG = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

/** DNS-1123 label (namespaces, container names): the messages IsDNS1123Label returns */
export function dns1123Label (value: string): string[] {
  const errs = value.length > 63 ? ['must be no more than 63 characters'] : []
  if (!LABEL_RE.test(value)) errs.push(LABEL_MSG)
  return errs
}

/** DNS-1123 subdomain (most object names) */
export function dns1123Subdomain (value: string): string[] {
  const errs = value.length > 253 ? ['must be no more than 253 characters'] : []
  if (!SUBDOMAIN_RE.test(value)) errs.push(SUBDOMAIN_MSG)
  return errs
}

const LABEL_VALUE_RE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/
const NAME_PART_RE = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/

export function labelValue (value: string): string[] {
  const errs = value.length > 63 ? ['must be no more than 63 characters'] : []
  if (!LABEL_VALUE_RE.test(value)) errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
  return errs
}

/** label and annotation keys: [prefix/]name */
export function qualifiedName (key: string): string[] {
  const slash = key.lastIndexOf('/')
  const name = slash < 0 ? key : key.slice(slash + 1)
  const prefix = slash < 0 ? undefined : key.slice(0, slash)
  const errs: string[] = []
  if (prefix !== undefined) errs.push(...dns1123Subdomain(prefix).map(m => `prefix part ${m}`))
  if (name.length === 0) errs.push('name part must be non-empty')
  else if (name.length > 63) errs.push('name part must be no more than 63 characters')
  if (name.length > 0 && !NAME_PART_RE.test(name)) errs.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
  return errs
}

/** Secret data keys and secretKeyRef keys */
export function configKey (key: string): string[] {
  const errs = key.length > 253 ? ['must be no more than 253 characters'] : []
  if (!/^[-._a-zA-Z0-9]+$/.test(key)) errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
  if (key === '.' || key === '..' || key.startsWith('..')) errs.push("must not be '.' or '..' and must not start with '..'")
  return errs
}
