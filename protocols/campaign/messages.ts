import { z } from 'zod'
import { ShardOutputSchema, ShardSchema } from './shard.ts'
import { BlobRefSchema, WorkloadSchema } from './spec.ts'

export const WORKER_ACTOR = 'worker'
export const COORDINATOR_ACTOR = 'coordinator'
/** the local actor that runs a detached campaign's shards as Slurm array tasks (zp submit --on slurm) */
export const DETACHED_ACTOR = 'detached'
/** the worker a detached campaign's shards are leased to: not a peer, the coordinator's own node's detached actor */
export const DETACHED_WORKER = 'detached:slurm'
export const DETACHED_WORKER_NAME = 'slurm-array'

const CampaignId = z.string().regex(/^c-[a-z0-9]{6,40}$/, { message: 'expected a campaign id like c-…' })
const Epoch = z.number().int().positive()

/**
 * A lease: shard + attempt + epoch. The epoch is the fencing token: it grows
 * with every lease of the campaign, so a result can be tied to the lease it
 * answers and a stale one recognised.
 */
export const LeaseSchema = z.object({
  shard: ShardSchema,
  attempt: z.number().int().positive(),
  epoch: Epoch,
  timeoutMs: z.number().int().positive(),
  /** the last state a previous attempt saved with ctx.checkpoint: the shard resumes from it */
  resumeFrom: z.unknown().optional()
})
export type Lease = z.infer<typeof LeaseSchema>

/** Coordinator → worker (the worker actor is privileged: trusted coordinators only). */
export const WorkerRequestSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('lease'),
    campaignId: CampaignId,
    campaignName: z.string().max(128),
    workload: WorkloadSchema,
    params: z.record(z.string(), z.unknown()),
    leases: z.array(LeaseSchema).min(1).max(256),
    /** the coordinator's term (fencing): a worker refuses leases of a campaign from a lower term than it has seen */
    term: z.number().int().nonnegative().optional(),
    /** the campaign's replicas: one of them may take the campaign over, and the worker then works for it */
    successors: z.array(z.string().min(1).max(128)).max(16).optional()
  }),
  /** the sender took the campaign over at `term`: results of its shards go there now */
  z.object({ type: z.literal('moved'), campaignId: CampaignId, term: z.number().int().positive() }),
  z.object({
    type: z.literal('cancel'),
    campaignId: CampaignId,
    /** shard indexes to stop; absent: every shard of the campaign */
    shards: z.array(z.number().int().nonnegative()).optional()
  })
])
export type WorkerRequest = z.infer<typeof WorkerRequestSchema>

/** Why a worker turned a lease down: the coordinator switches on this, never on `reason`. */
export const LeaseRefusalSchema = z.enum([
  /** the worker has no room: its slots and queue are full */
  'busy',
  /** the worker's node is draining: it takes no new work */
  'draining',
  /** the sender's term is below the one the worker follows for this campaign: another coordinator replaced it */
  'superseded',
  /** the worker already runs (or has queued) this shard */
  'duplicate'
])
export type LeaseRefusal = z.infer<typeof LeaseRefusalSchema>

/** The worker takes each lease it has room for; the rest come back refused with a code and the reason. */
export const LeaseReplySchema = z.object({
  accepted: z.array(Epoch),
  refused: z.array(z.object({ epoch: Epoch, code: LeaseRefusalSchema, reason: z.string().max(512) })),
  /** the worker's free slots after taking these */
  free: z.number().int().nonnegative()
})
export type LeaseReply = z.infer<typeof LeaseReplySchema>

const ShardRef = {
  campaignId: CampaignId,
  index: z.number().int().nonnegative(),
  epoch: Epoch
}

/**
 * Worker → coordinator. Public (a worker need not be trusted by the
 * coordinator's node); the coordinator accepts only what matches a lease it
 * granted to the sending peer.
 */
export const CoordinatorRequestSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('progress'), ...ShardRef, fraction: z.number().min(0).max(1) }),
  z.object({
    type: z.literal('result'),
    ...ShardRef,
    attempt: z.number().int().positive(),
    durationMs: z.number().nonnegative(),
    outcome: z.discriminatedUnion('ok', [
      /** small outputs inline; large ones as a blob the coordinator fetches from the worker */
      z.object({ ok: z.literal(true), output: ShardOutputSchema.optional(), blob: BlobRefSchema.optional() }),
      z.object({ ok: z.literal(false), error: z.string().max(8192), retryable: z.boolean() })
    ])
  }),
  /** the worker gives a shard back unfinished (it is draining): not a failure of the shard */
  z.object({ type: z.literal('release'), ...ShardRef, reason: z.string().max(512) }),
  /** a module shard's ctx.checkpoint(state): kept (durably) so a retry resumes from it */
  z.object({ type: z.literal('checkpoint'), ...ShardRef, state: z.unknown() })
])
export type CoordinatorRequest = z.infer<typeof CoordinatorRequestSchema>

export const ResultAckSchema = z.object({
  /** stored durably (or already had it) */
  ok: z.boolean(),
  duplicate: z.boolean().optional(),
  /** the lease is no longer this worker's (the shard was re-leased after a loss): stop */
  stale: z.boolean().optional(),
  /** the campaign has a new coordinator (a replica took it over): deliver there */
  movedTo: z.object({ peer: z.string().min(1).max(128), term: z.number().int().positive() }).optional()
})
export type ResultAck = z.infer<typeof ResultAckSchema>

/**
 * A worker takes leases for up to this many times its slots: a shard queued
 * behind the running ones starts the moment a slot frees, instead of after a
 * round trip to the coordinator.
 */
export const WORKER_QUEUE_FACTOR = 2
