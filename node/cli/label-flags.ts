import { LabelKeySchema, LabelValueSchema, type Labels } from '../../protocols/bridge/schema.ts'
import { UsageError } from './errors.ts'

/**
 * `--label KEY=VALUE`, repeatable (commander's accumulator): each one checked
 * against the label schema, a key given twice refused rather than one of
 * the two silently winning.
 */
export function labelFlag (value: string, previous: Labels = {}): Labels {
  const form = 'give it as KEY=VALUE, e.g. --label bridge=slurm'
  const eq = value.indexOf('=')
  if (eq < 0) throw new UsageError(`--label '${value}' has no '=': ${form}`)
  const key = value.slice(0, eq)
  const val = value.slice(eq + 1)
  const badKey = LabelKeySchema.safeParse(key).error?.issues[0]?.message
  if (badKey != null) throw new UsageError(`--label '${value}': the key '${key}' is not allowed (${badKey}); ${form}`)
  const badValue = LabelValueSchema.safeParse(val).error?.issues[0]?.message
  if (badValue != null) throw new UsageError(`--label '${value}': the value '${val}' is not allowed (${badValue}); ${form}`)
  const before = previous[key]
  if (before != null && before !== val) throw new UsageError(`--label ${key} is given twice ('${before}' and '${val}'); give each key once`)
  return { ...previous, [key]: val }
}
