import { Packr } from 'msgpackr'
import type { ZodType } from 'zod'
import { summarizeIssues } from './validate.ts'

/**
 * Plain msgpack on the wire: no records, no custom extensions, no class
 * revival, maps decoded as plain objects. What a peer sends is data, nothing
 * more, and nothing acts on it before its schema has accepted it.
 */
const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
  mapsAsObjects: true,
  int64AsType: 'number'
})

export class DecodeError extends Error {
  override name = 'DecodeError'
}

export function encode (value: unknown): Uint8Array {
  return packr.pack(value)
}

export function decode (bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes)
  } catch (err) {
    throw new DecodeError(`frame is not valid msgpack: ${(err as Error).message}`)
  }
}

/** Decodes and validates; the error names the offending fields. */
export function decodeAs<T> (schema: ZodType<T>, bytes: Uint8Array, what: string): T {
  const parsed = schema.safeParse(decode(bytes))
  if (!parsed.success) throw new DecodeError(`invalid ${what}: ${summarizeIssues(parsed.error)}`)
  return parsed.data
}
