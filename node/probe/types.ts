import type { Logger } from '../logger.ts'
import type { Capability } from '../../protocols/membership/capabilities.ts'

/** What one probe contributes to the report, keyed per CAPABILITY_KEY. */
export type Capabilities = Record<string, Capability>

/** Handed to every probe; `signal` fires on its timeout and on the caller's abort. */
export interface ProbeContext {
  signal: AbortSignal
  logger: Logger
}

/** The wire contract caps reasons and messages at 2000 characters; we keep them readable well below that. */
const MAX_TEXT = 500

export function clip (text: string, max = MAX_TEXT): string {
  const flat = text.trim()
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`
}

export function ok (info?: Record<string, unknown>): Capability {
  return info === undefined ? { status: 'ok' } : { status: 'ok', info }
}

export function unavailable (reason: string): Capability {
  return { status: 'unavailable', reason: clip(reason) }
}

export function failed (message: string): Capability {
  return { status: 'error', message: clip(message) }
}

export function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
