import { z } from 'zod'

/*
 * Campaign templates: a campaign file with declared `parameters:` and `${name}` references in its string values.
 * Expanded before the campaign is validated, so a template's campaign is exactly the plain spec it stands for: a
 * value that is only a reference (`total: ${paths}`) takes the parameter's type; a reference inside a longer
 * string is written into it. Values come as text from the command line (`--set paths=200000`) or typed from a
 * parameters file or the REST API; each is checked against its declaration.
 */

export const ParameterSchema = z.object({
  type: z.enum(['integer', 'number', 'string', 'boolean']),
  default: z.union([z.number(), z.string(), z.boolean()]).optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  enum: z.array(z.union([z.number(), z.string()])).min(1).max(1000).optional(),
  description: z.string().max(4096).optional()
}).strict()
export type Parameter = z.infer<typeof ParameterSchema>

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/
export const ParametersSchema = z.record(z.string().regex(NAME, 'a parameter name is a letter or _, then letters, digits or _ (at most 64)'), ParameterSchema)
  .refine(p => Object.keys(p).length <= 256, 'at most 256 parameters')

export type ParamValue = string | number | boolean
/** Values as given: text from `--set`, or typed (a parameters file, the REST API). */
export type ParamValues = Readonly<Record<string, ParamValue>>

export class TemplateError extends Error {
  override name = 'TemplateError'
}

const REF = /\$\{([^}]*)\}/g

function describe (p: Parameter): string {
  const range = p.enum != null
    ? `one of ${p.enum.map(v => JSON.stringify(v)).join(', ')}`
    : [p.min != null ? `at least ${p.min}` : '', p.max != null ? `at most ${p.max}` : ''].filter(s => s !== '').join(' and ')
  return `${p.type === 'integer' ? 'an integer' : `a ${p.type}`}${range !== '' ? ` ${range}` : ''}`
}

/** One value checked against its declaration (text is read as the declared type). */
export function checkValue (name: string, p: Parameter, given: ParamValue, label: string): ParamValue {
  const bad = (why: string): never => {
    throw new TemplateError(`${label}: parameter ${name} = ${JSON.stringify(given)} ${why}; it takes ${describe(p)}${p.default != null ? ` (default ${JSON.stringify(p.default)})` : ''}`)
  }
  let value: ParamValue = given
  if (p.type === 'integer' || p.type === 'number') {
    const n = typeof given === 'number' ? given : typeof given === 'string' && given.trim() !== '' ? Number(given) : NaN
    if (!Number.isFinite(n)) bad('is not a number')
    if (p.type === 'integer' && !Number.isInteger(n)) bad('is not an integer')
    if (p.min != null && n < p.min) bad('is below the allowed range')
    if (p.max != null && n > p.max) bad('is above the allowed range')
    value = n
  } else if (p.type === 'boolean') {
    if (typeof given === 'boolean') value = given
    else if (given === 'true' || given === 'false') value = given === 'true'
    else bad('is not true or false')
  } else {
    value = String(given)
  }
  if (p.enum != null && !p.enum.includes(value as number | string)) bad('is not an allowed value')
  return value
}

/** Every declared parameter's value: given, else its default; an unknown or missing one is an error naming it. */
export function resolveValues (params: Record<string, Parameter>, given: ParamValues, label: string): Record<string, ParamValue> {
  const declared = Object.keys(params)
  for (const name of Object.keys(given)) {
    if (!(name in params)) throw new TemplateError(`${label}: no parameter ${name}; the template declares ${declared.length > 0 ? declared.join(', ') : 'none'}`)
  }
  const out: Record<string, ParamValue> = {}
  for (const [name, p] of Object.entries(params)) {
    const v = given[name] ?? p.default
    if (v == null) throw new TemplateError(`${label}: parameter ${name} has no default; give it with --set ${name}=… (${describe(p)})`)
    out[name] = checkValue(name, p, v, label)
  }
  return out
}

function substitute (node: unknown, values: Record<string, ParamValue>, label: string, path: string): unknown {
  if (typeof node === 'string') {
    const refs = [...node.matchAll(REF)]
    if (refs.length === 0) return node
    for (const m of refs) {
      if (!(m[1]! in values)) throw new TemplateError(`${label}: ${path} refers to \${${m[1]}}, which is not a declared parameter (${Object.keys(values).join(', ') || 'none declared'})`)
    }
    // the whole value one reference: it keeps the parameter's type
    if (refs.length === 1 && refs[0]![0] === node) return values[refs[0]![1]!]
    return node.replace(REF, (_all, name: string) => String(values[name]))
  }
  if (Array.isArray(node)) return node.map((v, i) => substitute(v, values, label, `${path}[${i}]`))
  if (node != null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substitute(v, values, label, path === '' ? k : `${path}.${k}`)]))
  }
  return node
}

/** Whether a parsed campaign file is a template (declares parameters). */
export function isTemplate (raw: unknown): raw is Record<string, unknown> & { parameters: unknown } {
  return raw != null && typeof raw === 'object' && !Array.isArray(raw) && 'parameters' in raw
}

/**
 * A template with its values put in: the plain campaign it stands for, and the values used (defaults included).
 * A file that is not a template comes back as it is; values for one are an error.
 */
export function expandTemplate (raw: unknown, given: ParamValues, label: string): { campaign: unknown, values?: Record<string, ParamValue> } {
  if (!isTemplate(raw)) {
    if (Object.keys(given).length > 0) throw new TemplateError(`${label}: parameters were given (${Object.keys(given).join(', ')}) but this campaign file declares none (a template has a parameters: section)`)
    return { campaign: raw }
  }
  // `description:` belongs to the template (zp templates list), not to the campaign
  const { parameters, description: _description, ...rest } = raw
  const declared = ParametersSchema.safeParse(parameters)
  if (!declared.success) {
    const issue = declared.error.issues[0]!
    throw new TemplateError(`${label}: parameters${issue.path.length > 0 ? '.' + issue.path.join('.') : ''}: ${issue.message}`)
  }
  const values = resolveValues(declared.data, given, label)
  return { campaign: substitute(rest, values, label, ''), values }
}

/** `--set k=v` flags as values (text: the declaration decides the type). */
export function parseSets (sets: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const s of sets) {
    const eq = s.indexOf('=')
    if (eq <= 0) throw new TemplateError(`--set ${s}: expected NAME=VALUE, e.g. --set paths=200000`)
    out[s.slice(0, eq)] = s.slice(eq + 1)
  }
  return out
}
