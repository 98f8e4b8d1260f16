import type { FieldErrors } from './field-errors.ts'
import { validateMeta } from './validate-meta.ts'
import { validatePodSpec } from './validate-pod.ts'
import type { Job } from './wire.ts'

/**
 * ValidateJob (pkg/apis/batch/validation) for the fields a Job-based bridge
 * sends: restart policy, completion mode and counts, per-index backoff and
 * the pod failure policy, with the apiserver's wording.
 */
const MAX_INDEXED = 100_000
const MAX_RULES = 20
const MAX_EXIT_CODES = 255
const ACTIONS = ['Count', 'FailIndex', 'FailJob', 'Ignore']
const UNIMPLEMENTED = ['successPolicy', 'managedBy']

export function validateJobSpec (job: Job, errs: FieldErrors): void {
  const spec = job.spec
  const raw = spec as typeof spec & Record<string, unknown>
  for (const field of UNIMPLEMENTED) if (raw[field] !== undefined) errs.unimplemented(`spec.${field}`)
  if (spec.suspend === true) errs.unimplemented('spec.suspend')
  if (raw.manualSelector === true) errs.unimplemented('spec.manualSelector')
  else if (raw.selector !== undefined && (spec.selector?.matchLabels === undefined || Object.keys(spec.selector.matchLabels).length !== 1)) errs.invalid('spec.selector', spec.selector, '`selector` not auto-generated')
  // ValidatePodTemplateSpec checks the labels at spec.template.labels: a Job name longer than 63 characters fails here, in its job-name labels
  validateMeta(spec.template?.metadata ?? {}, 'spec.template', errs)
  for (const field of ['parallelism', 'completions', 'backoffLimit', 'backoffLimitPerIndex', 'maxFailedIndexes', 'activeDeadlineSeconds', 'ttlSecondsAfterFinished'] as const) {
    errs.nonNegative(`spec.${field}`, spec[field])
  }
  if (spec.activeDeadlineSeconds === 0) errs.invalid('spec.activeDeadlineSeconds', 0, 'must be greater than 0')
  const indexed = spec.completionMode === 'Indexed'
  if (spec.completionMode !== 'NonIndexed' && !indexed) errs.notSupported('spec.completionMode', spec.completionMode, ['NonIndexed', 'Indexed'])
  if (indexed) {
    if (spec.completions === undefined) errs.required('spec.completions', 'when completion mode is Indexed')
    else if (spec.completions > MAX_INDEXED) errs.invalid('spec.completions', spec.completions, `must be less than or equal to ${MAX_INDEXED} when completion mode is Indexed`)
    if ((spec.parallelism ?? 0) > MAX_INDEXED) errs.invalid('spec.parallelism', spec.parallelism, `must be less than or equal to ${MAX_INDEXED} when completion mode is Indexed`)
  }
  if (spec.backoffLimitPerIndex !== undefined && !indexed) errs.forbidden('spec.backoffLimitPerIndex', 'requires indexed completion mode')
  if (spec.maxFailedIndexes !== undefined) {
    if (spec.backoffLimitPerIndex === undefined) errs.required('spec.backoffLimitPerIndex', 'when maxFailedIndexes is specified')
    if (spec.completions !== undefined && spec.maxFailedIndexes > spec.completions) errs.invalid('spec.maxFailedIndexes', spec.maxFailedIndexes, 'must be less than or equal to completions')
  }
  const podSpec = spec.template?.spec ?? { containers: [] }
  validatePodSpec(podSpec, 'spec.template.spec', errs)
  const restart = podSpec.restartPolicy
  if (restart !== 'OnFailure' && restart !== 'Never') errs.notSupported('spec.template.spec.restartPolicy', restart, ['OnFailure', 'Never'])
  if (spec.podFailurePolicy !== undefined) validatePodFailurePolicy(job, errs)
  const replacement = spec.podReplacementPolicy
  if (replacement !== 'TerminatingOrFailed' && replacement !== 'Failed') errs.notSupported('spec.podReplacementPolicy', replacement, ['Failed', 'TerminatingOrFailed'])
  else if (spec.podFailurePolicy !== undefined && replacement !== 'Failed') errs.notSupported('spec.podReplacementPolicy', replacement, ['Failed'])
}

function validatePodFailurePolicy (job: Job, errs: FieldErrors): void {
  const spec = job.spec
  const rules = spec.podFailurePolicy?.rules ?? []
  if (spec.template?.spec?.restartPolicy !== 'Never') errs.invalid('spec.template.spec.restartPolicy', spec.template?.spec?.restartPolicy, 'only "Never" is supported when podFailurePolicy is specified')
  if (rules.length > MAX_RULES) errs.causes.push({ reason: 'FieldValueTooMany', message: `Too many: ${rules.length}: must have at most ${MAX_RULES} items`, field: 'spec.podFailurePolicy.rules' })
  const containerNames = new Set((spec.template?.spec?.containers ?? []).map(c => c.name))
  rules.forEach((rule, i) => {
    const p = `spec.podFailurePolicy.rules[${i}]`
    if (!ACTIONS.includes(rule.action)) errs.notSupported(`${p}.action`, rule.action, ACTIONS)
    else if (rule.action === 'FailIndex' && spec.backoffLimitPerIndex === undefined) errs.forbidden(`${p}.action`, 'requires the backoffLimitPerIndex to be set')
    const onExit = rule.onExitCodes
    const onConditions = rule.onPodConditions
    if (onExit === undefined && onConditions === undefined) errs.invalid(p, 'specifying one of OnExitCodes and OnPodConditions is required', 'specifying one of OnExitCodes and OnPodConditions is required')
    if (onExit !== undefined && onConditions !== undefined) errs.invalid(p, 'specifying both OnExitCodes and OnPodConditions is not supported', 'specifying both OnExitCodes and OnPodConditions is not supported')
    if (onExit !== undefined) {
      const q = `${p}.onExitCodes`
      if (onExit.containerName !== undefined && !containerNames.has(onExit.containerName)) errs.invalid(`${q}.containerName`, onExit.containerName, 'must be one of the container or initContainer names in the pod template')
      if (onExit.operator !== 'In' && onExit.operator !== 'NotIn') errs.notSupported(`${q}.operator`, onExit.operator, ['In', 'NotIn'])
      const values = onExit.values ?? []
      if (values.length === 0) errs.invalid(`${q}.values`, values, 'at least one value is required')
      if (values.length > MAX_EXIT_CODES) errs.causes.push({ reason: 'FieldValueTooMany', message: `Too many: ${values.length}: must have at most ${MAX_EXIT_CODES} items`, field: `${q}.values` })
      values.forEach((v, j) => {
        if (onExit.operator === 'In' && v === 0) errs.invalid(`${q}.values[${j}]`, v, 'must not be 0 for the In operator')
        if (j > 0 && values[j - 1] === v) errs.duplicate(`${q}.values[${j}]`, v)
        else if (j > 0 && values[j - 1]! > v) errs.invalid(`${q}.values[${j}]`, v, 'must be ordered')
      })
    }
    onConditions?.forEach((c, j) => {
      const q = `${p}.onPodConditions[${j}]`
      if ((c.type ?? '') === '') errs.required(`${q}.type`)
      if (!['True', 'False', 'Unknown'].includes(c.status ?? 'True')) errs.notSupported(`${q}.status`, c.status, ['True', 'False', 'Unknown'])
    })
  })
}
