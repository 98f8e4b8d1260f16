import { z } from 'zod'
import { ACTOR_STATUSES } from './errors.ts'

/** Only the version is read first, so a newer envelope is refused by version, not by shape. */
export const VersionProbeSchema = z.object({ v: z.number() })

export const RequestSchema = z.object({
  v: z.number().int(),
  /** correlates the reply; 0 is reserved for errors about frames that could not be read */
  id: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  /** `cancel`: the asker of request `id` stopped waiting (timeout or abort) */
  kind: z.enum(['tell', 'ask', 'cancel']),
  to: z.string().min(1).max(128),
  body: z.unknown(),
  ttlMs: z.number().int().positive().max(24 * 3600 * 1000).optional()
})
export type Request = z.infer<typeof RequestSchema>

export const ResponseSchema = z.object({
  v: z.number().int(),
  id: z.number().int().nonnegative(),
  status: z.enum(ACTOR_STATUSES),
  body: z.unknown().optional(),
  message: z.string().max(4096).optional()
})
export type Response = z.infer<typeof ResponseSchema>
