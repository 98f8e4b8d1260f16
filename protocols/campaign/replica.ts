import { z } from 'zod'
import { BlobRefSchema, CampaignSpecSchema } from './spec.ts'
import { CampaignStateSchema, CampaignStatusSchema, DeadLetterSchema, DurationsSchema, WorkerStatsSchema } from './status.ts'

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
  state: CampaignStateSchema,
  shards: Index,
  done: Index,
  deadLetters: z.array(DeadLetterSchema),
  runDir: z.string(),
  offsets: z.array(z.number().int().nonnegative()).optional(),
  sliceHashes: z.array(z.string()).optional(),
  epochReserved: z.number().int().nonnegative().optional(),
  auditHead: z.string().optional(),
  term: Term.optional(),
  replicas: z.array(PeerId).optional(),
  movedTo: z.object({ peer: PeerId, term: Term }).optional(),
  /** the names of the workers that held its leases, so reports name them after a restart or a takeover */
  workerNames: z.record(PeerId, z.string().max(256)).optional(),
  /** an ended campaign's shards per worker, over every result stored (whichever coordinator stored it) */
  workers: z.array(WorkerStatsSchema).max(10_000).optional(),
  /** and the run times of every stored result */
  durations: DurationsSchema.optional()
})
export type CampaignRecord = z.infer<typeof CampaignRecordSchema>

export const StoredResultSchema = z.object({
  rows: z.array(z.unknown()),
  info: z.record(z.string(), z.unknown()).optional(),
  worker: z.string(),
  attempt: z.number().int().positive(),
  durationMs: z.number().nonnegative()
})
export type StoredResult = z.infer<typeof StoredResultSchema>

/** What a shard has been through beyond its result: failed attempts (and where), its dead letter, its module checkpoint. */
export const ShardRecordSchema = z.object({
  failures: z.number().int().nonnegative(),
  /** the workers its failed attempts ran on */
  failedOn: z.array(PeerId).max(64).optional(),
  dead: z.object({ attempts: z.number().int().nonnegative(), error: z.string() }).optional(),
  checkpoint: z.unknown().optional()
})
export type ShardRecord = z.infer<typeof ShardRecordSchema>

/** A lease in force: its holder may still deliver a result, even across a coordinator restart. */
const StoredLeaseSchema = z.object({ index: Index, worker: PeerId, epoch: z.number().int().positive() })
export type StoredLease = z.infer<typeof StoredLeaseSchema>

/** One change of a coordinator's durable state; applying it again changes nothing. */
export const ReplicaOpSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('record'), record: CampaignRecordSchema }),
  /** a result, which also ends the lease it answers */
  z.object({ op: z.literal('result'), index: Index, result: StoredResultSchema }),
  z.object({ op: z.literal('shard'), index: Index, state: ShardRecordSchema }),
  z.object({ op: z.literal('leases'), put: z.array(StoredLeaseSchema), del: z.array(Index) })
])
export type ReplicaOp = z.infer<typeof ReplicaOpSchema>
export const ReplicaOpsSchema = z.array(ReplicaOpSchema)

/** A whole campaign's state at `seq`: what a new (or lagging) replica starts from. */
export const SnapshotSchema = z.object({
  record: CampaignRecordSchema,
  results: z.array(z.tuple([Index, StoredResultSchema])),
  shards: z.array(z.tuple([Index, ShardRecordSchema])),
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
  z.object({ type: z.literal('export'), campaignId: CampaignId, format: z.enum(['jsonl', 'csv']) }),
  /** anyone: an ended campaign's summary.md (or summary.html, with charts), from the node that wrote it */
  z.object({ type: z.literal('summary'), campaignId: CampaignId, format: z.enum(['md', 'html']).optional() }),
  /** anyone: the campaign's audit log, offered to the asker as a blob, to verify where it asks */
  z.object({ type: z.literal('audit'), campaignId: CampaignId })
])
export type ReplicaRequest = z.infer<typeof ReplicaRequestSchema>

/** Why a replica turned a coordinator's append or snapshot down: callers switch on this, never on `reason`. */
export const AppendRefusalSchema = z.enum([
  /** the sender's term is below the replica's: another coordinator replaced it (named in `coordinator`) */
  'superseded',
  /** the sender's term already belongs to another coordinator */
  'term-taken',
  /** a higher term from a peer that is neither a replica of the campaign nor trusted */
  'not-member',
  /** not now: the replica voted for a candidate of a higher term and confirms nobody else until that election ends */
  'voted',
  /** not now: the previous coordinator's lease is still in force */
  'leased',
  /** the replica holds no copy of the campaign: send a snapshot */
  'no-copy',
  /** the copy lacks changes before these, or holds another coordinator's log: send a snapshot */
  'gap'
])
export type AppendRefusal = z.infer<typeof AppendRefusalSchema>

export const AppendReplySchema = z.object({
  ok: z.boolean(),
  /** set on every refusal */
  code: AppendRefusalSchema.optional(),
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

/** How a replica answered a vote: the candidate switches on this, never on `reason`. */
export const VoteCodeSchema = z.enum([
  'granted',
  /** the candidate's copy is older than the voter's (by term, then seq): the voter stands next */
  'behind',
  /** the voter already voted in this term (for another candidate) or a later one */
  'voted',
  /** the coordinator confirmed itself less than a lease ago: it may still lead */
  'leased',
  /** the term asked for is not above the one the voter follows */
  'term-taken',
  /** the candidate is not a replica of the campaign */
  'not-member',
  /** the voter holds no copy of the campaign */
  'no-copy'
])
export type VoteCode = z.infer<typeof VoteCodeSchema>

export const VoteReplySchema = z.object({ granted: z.boolean(), code: VoteCodeSchema, term: Term, reason: z.string().max(512).optional() })
export type VoteReply = z.infer<typeof VoteReplySchema>

/** What a node knows of a campaign: its coordinator's status, or its copy's (marked `stale` when it may be behind). */
export const LookupReplySchema = CampaignStatusSchema.nullable()

/**
 * The campaign's results, ready to fetch, and the state they are of; null
 * when this node holds no up-to-date copy (a replica whose copy has not
 * reached the campaign's end may be behind, and does not export it).
 */
export const ExportReplySchema = z.object({
  blob: BlobRefSchema,
  state: CampaignStateSchema,
  done: Index,
  total: Index
}).nullable()
export type ExportReply = z.infer<typeof ExportReplySchema>

/** The two files an ended campaign's summary is written as: summary.md, and summary.html with charts. */
export type SummaryFormat = 'md' | 'html'

/** An ended campaign's summary (summary.md or summary.html), from the node that wrote it; null when it has none. */
export const SummaryReplySchema = z.object({ text: z.string().max(16 * 1024 * 1024) }).nullable()

/** A campaign's audit log as a blob to fetch, and the head its coordinator's record names (when ended). */
export const AuditReplySchema = z.object({ blob: BlobRefSchema, head: z.string().max(64).optional() }).nullable()

/** Inline batches stay well under the actor frame limit; larger ones travel as a blob. */
export const MAX_INLINE_OPS_BYTES = 160 * 1024
