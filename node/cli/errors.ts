import { CommanderError } from 'commander'
import { parseDuration } from '../campaign/duration.ts'

/** Bad input on the command line: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

const USAGE_ERRORS = new Set(['UsageError', 'BootstrapAddressError', 'ApiAddressError', 'MetricsAddressError', 'CampaignFileError', 'ExecConfigError', 'PskFileError', 'DataDirInUseError', 'WireguardInputError', 'CertsInputError', 'TemplateError'])

/**
 * One line on stderr naming the problem (and, in the message, the fix), then
 * the exit code: 2 for bad input, 1 for everything else. Stacks only with
 * ZP_DEBUG=1: people need the sentence, not the trace.
 */
export function exitWithError (prog: string, err: unknown): never {
  if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE)
  const e = err instanceof Error ? err : new Error(String(err))
  process.stderr.write(`${prog}: error: ${e.message}\n`)
  if (process.env.ZP_DEBUG === '1' && e.stack != null) process.stderr.write(e.stack + '\n')
  // a 400 from the node is bad input too (a malformed campaign file, say)
  const badRequest = e.name === 'ApiClientError' && (e as { status?: number }).status === 400
  process.exit(USAGE_ERRORS.has(e.name) || badRequest ? EXIT_USAGE : EXIT_FAILURE)
}

export function positiveInt (flag: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} takes a positive whole number, got '${value}'`)
    return n
  }
}

/** `--max-cost 2.5`: a positive number */
export function positiveNumber (flag: string) {
  return (value: string): number => {
    const n = Number(value)
    if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} takes a positive number, got '${value}'`)
    return n
  }
}

export function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

/** A duration flag: `30m`, `2h`, `7d`, or a number of milliseconds (0 included) */
export function durationFlag (flag: string) {
  return (value: string): number => {
    const ms = /^\d+$/.test(value.trim()) ? Number(value) : parseDuration(value)
    if (ms == null || !Number.isSafeInteger(ms)) throw new UsageError(`${flag} takes a duration such as 30m, 2h or 7d (or 0), got '${value}'`)
    return ms
  }
}
