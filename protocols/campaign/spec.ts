import { z } from 'zod'
import { BurstSchema, DetachedSchema, LabelsSchema } from '../bridge/schema.ts'
import { CapabilityKeySchema } from '../membership/capabilities.ts'

/**
 * A campaign as the coordinator holds it and ships it to workers and replicas:
 * validated, defaults applied, every file it named replaced by a content hash.
 * (The file people write is parsed by node/campaign/load.ts into this.)
 */

export const SHA256_HEX = /^[0-9a-f]{64}$/

export const BlobRefSchema = z.object({
  hash: z.string().regex(SHA256_HEX, { message: 'expected a sha256 hex digest' }),
  size: z.number().int().nonnegative(),
  /** the file name it came from, for messages and for import() of modules */
  name: z.string().max(256)
})
export type BlobRef = z.infer<typeof BlobRefSchema>

export const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'] as const
export const PrioritySchema = z.enum(PRIORITIES)
export type Priority = z.infer<typeof PrioritySchema>

export const RetryPolicySchema = z.object({
  /** attempts in all, the first included; errors the shard itself raised count, lost workers do not */
  maxAttempts: z.number().int().min(1).max(100),
  initialDelayMs: z.number().int().nonnegative().max(3_600_000),
  backoffFactor: z.number().min(1).max(10),
  maxDelayMs: z.number().int().nonnegative().max(86_400_000)
})
export type RetryPolicy = z.infer<typeof RetryPolicySchema>

export const RequirementsSchema = z.object({
  /** capability keys that must be `ok` on a worker, e.g. gpu.nvidia.cuda */
  capabilities: z.array(CapabilityKeySchema).max(64),
  /** minimum host memory */
  minMemoryBytes: z.number().nonnegative(),
  /** labels a worker must carry with these values (zp-node --label), e.g. { bridge: 'slurm' } */
  labels: LabelsSchema.optional()
})
export type Requirements = z.infer<typeof RequirementsSchema>

/** A scalar a grid parameter may take; shard parameters are plain JSON. */
export const GridValueSchema = z.union([z.string().max(1024), z.number(), z.boolean(), z.null()])
export type GridValue = z.infer<typeof GridValueSchema>

export const ShardingSchema = z.discriminatedUnion('kind', [
  /** shard i covers data set rows [i*perShard, (i+1)*perShard) */
  z.object({ kind: z.literal('rows'), perShard: z.number().int().positive(), seed: z.number().int() }),
  /** shard i covers iterations [i*perShard, (i+1)*perShard) of `total` */
  z.object({ kind: z.literal('iterations'), total: z.number().int().positive(), perShard: z.number().int().positive(), seed: z.number().int() }),
  /** the cartesian product of the parameters (names sorted, values in the order given), perShard points a shard */
  z.object({
    kind: z.literal('grid'),
    parameters: z.record(z.string().min(1).max(128), z.array(GridValueSchema).min(1).max(1_000_000)),
    perShard: z.number().int().positive(),
    seed: z.number().int()
  })
])
export type Sharding = z.infer<typeof ShardingSchema>

export const DataSetSchema = z.object({
  blob: BlobRefSchema,
  format: z.enum(['csv', 'jsonl']),
  /** data rows (CSV header excluded) */
  rows: z.number().int().nonnegative(),
  /** CSV header names; absent for JSONL */
  columns: z.array(z.string()).optional()
})
export type DataSet = z.infer<typeof DataSetSchema>

export const WorkloadSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('module'),
    /** an ES module exporting run(shard, ctx), self-contained (it is imported from the blob cache) */
    module: BlobRefSchema
  }),
  z.object({
    kind: z.literal('exec'),
    /** the name of a command template the worker's own node config allows */
    command: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: 'command template names are lower case letters, digits, - and _' })
  }),
  z.object({
    kind: z.literal('onnx'),
    model: BlobRefSchema,
    data: DataSetSchema,
    input: z.object({
      /** model input name; default: the model's first input */
      name: z.string().optional(),
      /** data columns (CSV) or keys (JSONL) that make one row of the input tensor, in order */
      columns: z.array(z.string().min(1)).min(1).max(65_536)
    }),
    output: z.object({
      /** model output name; default: the model's first output */
      name: z.string().optional(),
      /** the result field the output values go into */
      column: z.string().min(1)
    }),
    batchSize: z.number().int().positive().max(1_000_000),
    /** execution providers to prefer, best first; default: the best the worker has, then cpu */
    executionProviders: z.array(z.string().min(1)).max(16).optional(),
    /** a column (or file) of expected outputs for the correctness report */
    reference: z.object({
      column: z.string().min(1),
      tolerance: z.number().nonnegative(),
      /** a separate data set of references, row-aligned with `data`; default: `data` itself */
      data: DataSetSchema.optional()
    }).optional()
  })
])
export type Workload = z.infer<typeof WorkloadSchema>

export const CampaignSpecSchema = z.object({
  name: z.string().min(1).max(128),
  workload: WorkloadSchema,
  shards: ShardingSchema,
  requires: RequirementsSchema,
  priority: PrioritySchema,
  retry: RetryPolicySchema,
  shardTimeoutMs: z.number().int().positive().max(7 * 86_400_000),
  /** peers holding a replica of the coordinator's checkpoints (absent: the default, 2) */
  replicas: z.number().int().min(0).max(7).optional(),
  params: z.record(z.string(), z.unknown()),
  /** capacity brought up (zp bridge … up) when the campaign starts and released when it ends */
  burst: BurstSchema.optional(),
  /** run the shards as Slurm array tasks that never join the mesh (zp submit --on slurm) */
  detached: DetachedSchema.optional(),
  /** where the spec came from, for config.json */
  source: z.object({
    file: z.string().max(4096).optional(),
    gitCommit: z.string().max(64).optional(),
    gitDirty: z.boolean().optional()
  })
})
export type CampaignSpec = z.infer<typeof CampaignSpecSchema>
