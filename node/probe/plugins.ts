import { access } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { CapabilityKeySchema, CapabilitySchema } from '../../protocols/membership/capabilities.ts'
import { ProbeTimeoutError, withTimeout } from './timeout.ts'
import { errorMessage, failed, type Capabilities } from './types.ts'

/**
 * `--probe-plugin FILE`: an ES module exporting `probe({ signal })` (sync or
 * async) that returns vendor-qualified capabilities, for hardware the built-in
 * probes do not know (FPGAs, ASICs, lab instruments).
 */
const PluginReportSchema = z.record(CapabilityKeySchema, CapabilitySchema)
const SHAPE = 'probe() must return { "<kind>.<vendor>.<name>": { status: "ok", info? } | { status: "unavailable", reason } | { status: "error", message } }'

export interface PluginResult {
  /** absolute path of the module */
  file: string
  /** `plugin.<name>`, where this plugin's own failures are reported */
  errorKey: string
  capabilities: Capabilities
}

/** A failure whose message already names the problem and the fix. */
class PluginError extends Error {}

/** `plugin.<file name without extension, reduced to [a-z0-9_-]>`, made unique against `taken`. */
export function pluginErrorKey (file: string, taken: ReadonlySet<string> = new Set()): string {
  const name = basename(file).replace(/\.[cm]?[jt]s$/i, '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '')
  return uniqueKey(`plugin.${name === '' ? 'unnamed' : name}`, taken)
}

function uniqueKey (base: string, taken: ReadonlySet<string>): string {
  let key = base
  for (let n = 2; taken.has(key); n++) key = `${base}-${n}`
  return key
}

/** Zod issues as one line that names the offending key, e.g. `key "Bad Key": capability keys are …`. */
function summarizeIssues (error: z.ZodError): string {
  const shown = error.issues.slice(0, 3).map((issue) => {
    const [key, ...rest] = issue.path
    const detail = issue.code === 'invalid_key' ? issue.issues[0]?.message ?? issue.message : issue.message
    if (key === undefined) return detail
    return `key "${String(key)}"${rest.length > 0 ? ` at ${rest.map(String).join('.')}` : ''}: ${detail}`
  })
  const more = error.issues.length > shown.length ? `; and ${error.issues.length - shown.length} more` : ''
  return shown.join('; ') + more
}

async function loadAndRun (file: string, signal: AbortSignal): Promise<Capabilities> {
  try {
    await access(file)
  } catch {
    throw new PluginError(`plugin file not found: ${file}; check the --probe-plugin path`)
  }
  let mod: { probe?: unknown }
  try {
    mod = await import(pathToFileURL(file).href) as { probe?: unknown }
  } catch (err) {
    throw new PluginError(`could not import plugin ${file}: ${errorMessage(err)}; it must be an ES module that loads with \`node ${file}\``)
  }
  if (typeof mod.probe !== 'function') {
    throw new PluginError(`plugin ${file} has no probe export; add \`export async function probe () { return { 'fpga.acme.u250': { status: 'ok' } } }\``)
  }
  let result: unknown
  try {
    result = await (mod.probe as (ctx: { signal: AbortSignal }) => unknown)({ signal })
  } catch (err) {
    throw new PluginError(`plugin ${file}: probe threw: ${errorMessage(err)}; catch failures inside probe() and report them as { status: 'error', message }`)
  }
  const parsed = PluginReportSchema.safeParse(result)
  if (!parsed.success) throw new PluginError(`plugin ${file}: invalid result: ${summarizeIssues(parsed.error)}; ${SHAPE}`)
  return parsed.data
}

/** Loads and runs one plugin under its own timeout; every failure becomes an error entry under `errorKey`. */
export async function probePlugin (file: string, errorKey: string, timeoutMs: number, signal?: AbortSignal): Promise<PluginResult> {
  const abs = resolve(file)
  try {
    return { file: abs, errorKey, capabilities: await withTimeout(async (s) => await loadAndRun(abs, s), timeoutMs, signal) }
  } catch (err) {
    if (signal?.aborted === true) throw signal.reason
    const message = err instanceof ProbeTimeoutError
      ? `plugin ${abs}: probe timed out after ${timeoutMs}ms; make probe() settle sooner (it is given { signal }, which fires on timeout)`
      : err instanceof PluginError ? err.message
        : `plugin ${abs}: ${errorMessage(err)}`
    return { file: abs, errorKey, capabilities: { [errorKey]: failed(message) } }
  }
}

/**
 * Adds plugin capabilities to the built-in ones. A key that is already taken
 * (by a built-in probe or an earlier plugin) is dropped and reported as an
 * error entry of the plugin that tried to take it: letting the later one win
 * would let a plugin silently fake or hide built-in hardware.
 */
export function mergePluginResults (builtins: Capabilities, plugins: readonly PluginResult[]): Capabilities {
  const merged: Capabilities = { ...builtins }
  const owner = new Map<string, string>()
  for (const plugin of plugins) {
    const clashes: string[] = []
    for (const [key, capability] of Object.entries(plugin.capabilities)) {
      if (merged[key] !== undefined) {
        clashes.push(`${key} (already reported by ${owner.get(key) ?? 'a built-in probe'})`)
        continue
      }
      merged[key] = capability
      owner.set(key, plugin.file)
    }
    if (clashes.length > 0) {
      merged[uniqueKey(plugin.errorKey, new Set(Object.keys(merged)))] = failed(
        `plugin ${plugin.file} reports keys that are already taken, so they were dropped: ${clashes.join(', ')}; ` +
        'built-in keys cannot be overridden: use keys under your own vendor, e.g. "fpga.<vendor>.<model>"')
    }
  }
  return merged
}
