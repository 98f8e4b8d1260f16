import { z } from 'zod'
import { BlobRefSchema, CampaignSpecSchema } from './spec.ts'

/**
 * Checkpoint replication: a campaign's coordinator streams every change of
 * its durable state (record, results, shard states, leases) to the
 * checkpoint-replica actors of R other peers, in order, numbered by `seq`.
 * `term` counts coordinators of the campaign: it grows with every takeover,
 * and a replica refuses anything from a lower term (fencing).
 */
export const REPLICA_ACTOR = 'replica'

const CampaignId = z.string().regex(/^c-[a-z0-9]{6,40}$/, { message: 'expected a campaign id like c-…' })
const PeerId = z.string().min(1).max(128)
const Index = z.number().int().nonnegative()
const Term = z.number().int().nonnegative()
const Seq = z.number().int().nonnegative()

export const CampaignRecordSchema = z.object({
  id: CampaignId,
  spec: CampaignSpecSchema,
  specHash: z.string().max(64),
  createdAt: z.number(),
  startedAt: z.number().optional(),
  endedAt: z.number().optional(),
  state: z.enum(['QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED']),
  shards: Index,
  done: Index,
  deadLetters: z.array(z.object({ index: Index, attempts: z.number().int().nonnegative(), error: z.string() })),
  runDir: z.string(),
  offsets: z.array(z.number().int().nonnegative()).optional(),
  sliceHashes: z.array(z.string()).optional(),
  epochReserved: z.number().int().nonnegative().optional(),
  auditHead: z.string().optional(),
  term: Term.optional(),
  replicas: z.array(PeerId).optional(),
  movedTo: z.object({ peer: PeerId, term: Term }).optional()
})

export const StoredResultSchema = z.object({
  rows: z.array(z.unknown()),
  info: z.record(z.string(), z.unknown()).optional(),
  worker: z.string(),
  attempt: z.number().int().positive(),
  durationMs: z.number().nonnegative()
})

export const ShardStateSchema = z.object({
  failures: z.number().int().nonnegative(),
  dead: z.object({ attempts: z.number().int().nonnegative(), error: z.string() }).optional(),
  checkpoint: z.unknown().optional()
})

const StoredLeaseSchema = z.object({ index: Index, worker: PeerId, epoch: z.number().int().positive() })

/** One change of a coordinator's durable state; applying it again changes nothing. */
export const ReplicaOpSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('record'), record: CampaignRecordSchema }),
  /** a result, which also ends the lease it answers */
  z.object({ op: z.literal('result'), index: Index, result: StoredResultSchema }),
  z.object({ op: z.literal('shard'), index: Index, state: ShardStateSchema }),
  z.object({ op: z.literal('leases'), put: z.array(StoredLeaseSchema), del: z.array(Index) })
])
export type ReplicaOp = z.infer<typeof ReplicaOpSchema>
export const ReplicaOpsSchema = z.array(ReplicaOpSchema)

/** A whole campaign's state at `seq`: what a new (or lagging) replica starts from. */
export const SnapshotSchema = z.object({
  record: CampaignRecordSchema,
  results: z.array(z.tuple([Index, StoredResultSchema])),
  shards: z.array(z.tuple([Index, ShardStateSchema])),
  leases: z.array(StoredLeaseSchema)
})
export type Snapshot = z.infer<typeof SnapshotSchema>

const Leader = {
  campaignId: CampaignId,
  term: Term,
  /** every replica of the campaign (the coordinator is not one of them) */
  members: z.array(PeerId).max(16),
  /** how long the replica promises not to vote for another coordinator, from when it receives this */
  leaseMs: z.number().int().positive().max(600_000)
}

export const ReplicaRequestSchema = z.discriminatedUnion('type', [
  /**
   * ops `after`+1 … `seq`, each msgpack-encoded once by the coordinator (none: a heartbeat that renews its
   * lease); an op too large for a message comes alone, as a blob (msgpack of an array of ops)
   */
  z.object({
    type: z.literal('append'),
    ...Leader,
    after: Seq,
    seq: Seq,
    packed: z.array(z.custom<Uint8Array>(v => v instanceof Uint8Array, { message: 'expected bytes' })).max(4096).optional(),
    blob: BlobRefSchema.optional()
  }),
  /** replace the replica's copy with the state at `seq` (a blob), and fetch the workload's files */
  z.object({ type: z.literal('snapshot'), ...Leader, seq: Seq, blob: BlobRefSchema, files: z.array(BlobRefSchema).max(8) }),
  /** a replica asks the others to make it coordinator for `term` */
  z.object({ type: z.literal('vote'), campaignId: CampaignId, term: Term, candidate: PeerId, lastTerm: Term, seq: Seq }),
  /** anyone: who coordinates this campaign, as far as this node knows */
  z.object({ type: z.literal('lookup'), campaignId: CampaignId }),
  /** anyone: the campaign's results as this node holds them, offered to the asker as a blob */
  z.object({ type: z.literal('export'), campaignId: CampaignId, format: z.enum(['jsonl', 'csv']) })
])
export type ReplicaRequest = z.infer<typeof ReplicaRequestSchema>

export const AppendReplySchema = z.object({
  ok: z.boolean(),
  /** the replica's term: higher than the sender's means the sender has been replaced */
  term: Term,
  /** the last seq the replica holds */
  seq: Seq,
  /** the replica cannot apply this (a gap, or it has no copy): send a snapshot */
  snapshot: z.boolean().optional(),
  /** who replaced the sender, when it has been */
  coordinator: PeerId.optional(),
  reason: z.string().max(512).optional()
})
export type AppendReply = z.infer<typeof AppendReplySchema>

export const VoteReplySchema = z.object({ granted: z.boolean(), term: Term, reason: z.string().max(512).optional() })
export type VoteReply = z.infer<typeof VoteReplySchema>

export const LookupReplySchema = z.object({
  known: z.boolean(),
  coordinator: PeerId.optional(),
  term: Term.optional(),
  state: z.string().optional(),
  done: Index.optional(),
  shards: Index.optional(),
  name: z.string().optional()
}).nullable()
export type LookupReply = z.infer<typeof LookupReplySchema>

/** The export, ready to fetch; null when this node holds no copy of the campaign. */
export const ExportReplySchema = z.object({ blob: BlobRefSchema }).nullable()
export type ExportReply = z.infer<typeof ExportReplySchema>

/** Inline batches stay well under the actor frame limit; larger ones travel as a blob. */
export const MAX_INLINE_OPS_BYTES = 160 * 1024
