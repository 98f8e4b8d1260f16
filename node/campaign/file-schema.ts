import { z } from 'zod'
import { DurationSchema } from './duration.ts'
import { CapabilityKeySchema } from '../../protocols/membership/capabilities.ts'
import { GridValueSchema, PRIORITIES } from '../../protocols/campaign/spec.ts'
import { BurstFileSchema } from '../../bootstrap/bridge/file-schema.ts'
import { LabelsSchema } from '../../protocols/bridge/schema.ts'

/**
 * The campaign file as people write it (YAML or JSON). Unknown keys are
 * errors, so a typo (`shard:` for `shards:`) is caught, not ignored. Paths
 * are relative to the campaign file.
 */

export { DurationSchema, parseDuration } from './duration.ts'

const Path = z.string().min(1, { message: 'expected a file path' })

const ModuleWorkload = z.object({
  kind: z.literal('module'),
  /** an ES module exporting run(shard, ctx) */
  module: Path
}).strict()

const ExecWorkload = z.object({
  kind: z.literal('exec'),
  /** a command template allowed by each worker's own exec config */
  command: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { message: 'command template names are lower case letters, digits, - and _' })
}).strict()

const OnnxWorkload = z.object({
  kind: z.literal('onnx'),
  model: Path,
  data: Path,
  /** csv or jsonl; default from the data file's extension */
  format: z.enum(['csv', 'jsonl']).optional(),
  input: z.object({
    name: z.string().min(1).optional(),
    columns: z.array(z.string().min(1)).min(1)
  }).strict(),
  output: z.object({
    name: z.string().min(1).optional(),
    column: z.string().min(1).default('output')
  }).strict().default({ column: 'output' }),
  batchSize: z.number().int().positive().max(1_000_000).default(256),
  executionProviders: z.array(z.string().min(1)).max(16).optional(),
  reference: z.object({
    column: z.string().min(1),
    tolerance: z.number().nonnegative().default(1e-5),
    /** a separate file of expected outputs, row-aligned with `data` */
    data: Path.optional()
  }).strict().optional()
}).strict()

const Shards = z.object({
  rows: z.object({ perShard: z.number().int().positive(), seed: z.number().int().default(0) }).strict().optional(),
  iterations: z.object({ total: z.number().int().positive(), perShard: z.number().int().positive(), seed: z.number().int() }).strict().optional(),
  grid: z.object({
    parameters: z.record(z.string().min(1), z.array(GridValueSchema).min(1)),
    perShard: z.number().int().positive().default(1),
    seed: z.number().int().default(0)
  }).strict().optional()
}).strict().refine(s => [s.rows, s.iterations, s.grid].filter(x => x != null).length === 1, {
  message: 'give exactly one of rows, iterations or grid'
})

export const CampaignFileSchema = z.object({
  name: z.string().min(1).max(128),
  workload: z.discriminatedUnion('kind', [ModuleWorkload, ExecWorkload, OnnxWorkload]),
  shards: Shards,
  requires: z.object({
    capabilities: z.array(CapabilityKeySchema).default([]),
    /** CPU flags as /proc/cpuinfo spells them, e.g. avx2, avx512f, amx_tile */
    cpuFlags: z.array(z.string().regex(/^[a-z0-9_]+$/, { message: 'CPU flags are lower case, e.g. avx512f' })).default([]),
    minMemoryGB: z.number().nonnegative().default(0),
    /** labels a worker must carry (zp-node --label KEY=VALUE), e.g. { bridge: slurm } */
    labels: LabelsSchema.optional()
  }).strict().default({ capabilities: [], cpuFlags: [], minMemoryGB: 0 }),
  priority: z.enum(PRIORITIES).default('NORMAL'),
  retry: z.object({
    maxAttempts: z.number().int().min(1).max(100).default(3),
    initialDelay: DurationSchema.default(1000),
    backoffFactor: z.number().min(1).max(10).default(2),
    maxDelay: DurationSchema.default(60_000)
  }).strict().default({ maxAttempts: 3, initialDelay: 1000, backoffFactor: 2, maxDelay: 60_000 }),
  shardTimeout: DurationSchema.default(3_600_000),
  /** how many other peers keep a replica of the coordinator's checkpoints (0 turns replication off) */
  replicas: z.number().int({ message: 'replicas is a whole number of peers' }).min(0).max(7, { message: 'at most 7 replicas' }).default(2),
  params: z.record(z.string(), z.unknown()).default({}),
  /** capacity to bring up while the campaign runs: { slurm: { nodes: 4, gres: gpu:1 } } or { dask: { scheduler: tcp://… } } */
  burst: BurstFileSchema.optional()
}).strict()

export type CampaignFile = z.infer<typeof CampaignFileSchema>
