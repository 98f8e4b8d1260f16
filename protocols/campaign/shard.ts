import { z } from 'zod'
import { GridValueSchema } from './spec.ts'

/**
 * One shard as a worker receives it. Shard `index` of a campaign always
 * describes the same items with the same seed, whatever the cluster looks
 * like, so its result is the same wherever and however often it runs.
 */
export const ShardSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('rows'),
    index: z.number().int().nonnegative(),
    seed: z.number().int(),
    /** data rows [start, end) */
    start: z.number().int().nonnegative(),
    end: z.number().int().nonnegative(),
    /** the bytes of those rows in the data set blob, [byteStart, byteEnd), and their sha256 */
    byteStart: z.number().int().nonnegative(),
    byteEnd: z.number().int().nonnegative(),
    sliceHash: z.string().regex(/^[0-9a-f]{64}$/)
  }),
  z.object({
    kind: z.literal('iterations'),
    index: z.number().int().nonnegative(),
    seed: z.number().int(),
    /** iterations [start, end) */
    start: z.number().int().nonnegative(),
    end: z.number().int().nonnegative()
  }),
  z.object({
    kind: z.literal('grid'),
    index: z.number().int().nonnegative(),
    seed: z.number().int(),
    /** grid points [start, end) in enumeration order */
    start: z.number().int().nonnegative(),
    end: z.number().int().nonnegative(),
    points: z.array(z.record(z.string(), GridValueSchema))
  })
])
export type Shard = z.infer<typeof ShardSchema>

/** What one shard produced: result rows, in order (a single value becomes one row). */
export const ShardOutputSchema = z.object({
  rows: z.array(z.unknown()),
  /** what ran it, for the summary: e.g. { executionProvider: 'cuda' } */
  info: z.record(z.string(), z.unknown()).optional()
})
export type ShardOutput = z.infer<typeof ShardOutputSchema>
