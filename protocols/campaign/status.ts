import { z } from 'zod'
import { PrioritySchema } from './spec.ts'

const Count = z.number().int().nonnegative()
const PeerId = z.string().min(1).max(128)

export const CAMPAIGN_STATES = ['QUEUED', 'RUNNING', 'STOPPED', 'SUCCEEDED', 'FAILED', 'CANCELLED'] as const
export const CampaignStateSchema = z.enum(CAMPAIGN_STATES)
export type CampaignState = z.infer<typeof CampaignStateSchema>

export const WorkerStatsSchema = z.object({
  peer: PeerId,
  name: z.string().max(256),
  done: Count,
  failed: Count,
  /** shard run time, summed */
  busyMs: z.number().nonnegative()
})
export type WorkerStats = z.infer<typeof WorkerStatsSchema>

/** Shard run times as a histogram: counts per bucket (boundsMs inclusive upper bounds, one bucket above the last). */
export const DurationsSchema = z.object({ boundsMs: z.array(z.number().nonnegative()).max(32), counts: z.array(Count).max(33) })

export const DeadLetterSchema = z.object({ index: Count, attempts: Count, error: z.string() })
export type DeadLetter = z.infer<typeof DeadLetterSchema>

/**
 * A campaign as a node reports it: `GET /v1/campaigns/{id}`, `zp status
 * --json`, and the answer to a peer's lookup (validated on arrival like any
 * message from the wire).
 */
export const CampaignStatusSchema = z.object({
  id: z.string().min(1).max(64),
  name: z.string().max(256),
  state: CampaignStateSchema,
  priority: PrioritySchema,
  /** the peer whose coordinator runs it */
  coordinator: PeerId,
  /** that peer's name, when known */
  coordinatorName: z.string().max(256).optional(),
  createdAt: z.number(),
  startedAt: z.number().nullable(),
  endedAt: z.number().nullable(),
  shards: z.object({ total: Count, done: Count, failed: Count, running: Count, leased: Count, pending: z.number().int() }),
  /** 0..1, counting running shards' reported progress */
  progress: z.number().min(0).max(1),
  /** shards per second over the last minute */
  rate: z.number().nonnegative(),
  etaMs: z.number().nullable(),
  /** why ready shards are not being leased, why it is stopped, or why the answer may be behind */
  waiting: z.string().max(4096).nullable(),
  workers: z.array(WorkerStatsSchema).max(10_000),
  /** run times of the shards: while it runs, those completed under this coordinator; once ended, every stored one */
  durations: DurationsSchema.optional(),
  /** the first dead letters (all of them in summary.md) */
  deadLetters: z.array(DeadLetterSchema).max(100),
  runDir: z.string().max(4096),
  /** how many times a replica has taken the campaign over */
  term: Count.optional(),
  /** the peers holding replicas of its checkpoints, and their names where known */
  replicas: z.array(PeerId).max(16).optional(),
  replicaNames: z.array(z.string().max(256)).max(16).optional(),
  /** peers that refused its shards or its replicas because they do not trust this coordinator's node */
  refusedBy: z.array(PeerId).max(10_000).optional(),
  /** the answer comes from a copy that may be behind (a replica cut off from the coordinator): `waiting` says why */
  stale: z.boolean().optional()
})
export type CampaignStatus = z.infer<typeof CampaignStatusSchema>
