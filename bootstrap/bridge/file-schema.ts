import { z } from 'zod'
import { DurationSchema } from '../../node/campaign/duration.ts'
import { DaskUpSchema, K8sUpSchema, RayUpSchema, SlurmUpSchema } from '../../protocols/bridge/schema.ts'

/**
 * `burst:` in a campaign file and the flags of `zp bridge … up`: the same
 * options as the wire schema, with people's spellings (idle: 2m, sbatchArgs).
 */
const Idle = { idle: DurationSchema.optional() }

export const SlurmUpFileSchema = SlurmUpSchema.omit({ idleMs: true }).extend(Idle).strict()
  .transform(({ idle, ...rest }) => ({ ...rest, ...(idle != null ? { idleMs: idle } : {}) }))
export const DaskUpFileSchema = DaskUpSchema.omit({ idleMs: true }).extend(Idle).strict()
  .transform(({ idle, ...rest }) => ({ ...rest, ...(idle != null ? { idleMs: idle } : {}) }))

export const RayUpFileSchema = RayUpSchema.omit({ idleMs: true }).extend(Idle).strict()
  .transform(({ idle, ...rest }) => ({ ...rest, ...(idle != null ? { idleMs: idle } : {}) }))
export const K8sUpFileSchema = K8sUpSchema.omit({ idleMs: true }).extend(Idle).strict()
  .transform(({ idle, ...rest }) => ({ ...rest, ...(idle != null ? { idleMs: idle } : {}) }))

export const BurstFileSchema = z.object({
  slurm: SlurmUpFileSchema.optional(),
  dask: DaskUpFileSchema.optional(),
  ray: RayUpFileSchema.optional(),
  k8s: K8sUpFileSchema.optional(),
  /** the most the burst may cost; `zp submit --prices` estimates it, and a burst estimated above it is not started */
  maxCost: z.number().positive().optional()
}).strict()
