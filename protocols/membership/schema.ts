import { z } from 'zod'
import { CapabilityReportSchema } from './capabilities.ts'
import { MAX_LOAD_GPUS } from './constants.ts'

const Multiaddrs = z.array(z.string().min(1).max(512)).max(32)

export const SlotsSchema = z.object({
  total: z.number().int().nonnegative(),
  free: z.number().int().nonnegative()
})
export type Slots = z.infer<typeof SlotsSchema>

const Bytes = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
/** a fraction of capacity in use, 0..1 */
const Busy = z.number().min(0).max(1)

/** One GPU's utilisation; a field is null where its tool reports N/A (MIG slices, some drivers). */
export const GpuLoadSchema = z.object({
  util: Busy.nullable(),
  memUsed: Bytes.nullable(),
  memTotal: Bytes.nullable()
})
export type GpuLoad = z.infer<typeof GpuLoadSchema>

/** How busy a node's hardware was at its last sample (node/probe/utilisation.ts); memory in bytes. */
export const LoadSchema = z.object({
  cpu: Busy,
  memUsed: Bytes,
  memTotal: Bytes,
  gpus: z.array(GpuLoadSchema).max(MAX_LOAD_GPUS)
})
export type Load = z.infer<typeof LoadSchema>

/**
 * Published by every node every heartbeat interval (signed by gossipsub, so
 * the author is authenticated). Small: capabilities travel as a hash, fetched
 * in full with an `advert` request when the hash is new.
 */
export const HeartbeatSchema = z.object({
  v: z.literal(1),
  name: z.string().min(1).max(128),
  /** start time of this run of the node: a restart is a new incarnation */
  incarnation: z.number().int().positive(),
  /** increases with every heartbeat of one incarnation */
  seq: z.number().int().nonnegative(),
  state: z.enum(['alive', 'draining', 'left']),
  multiaddrs: Multiaddrs,
  slots: SlotsSchema,
  capsHash: z.string().max(128),
  /** absent from nodes that do not sample (older versions, sampling off, no sample yet) */
  load: LoadSchema.optional()
})
export type Heartbeat = z.infer<typeof HeartbeatSchema>

/** A heartbeat plus the full capability report. */
export const AdvertSchema = HeartbeatSchema.extend({
  capabilities: CapabilityReportSchema.nullable()
})
export type Advert = z.infer<typeof AdvertSchema>

export const KnownPeerSchema = z.object({
  peerId: z.string().min(1).max(128),
  multiaddrs: Multiaddrs
})
export type KnownPeer = z.infer<typeof KnownPeerSchema>

/** What other peers may send to the membership actor. */
export const MembershipRequestSchema = z.discriminatedUnion('type', [
  /** introduce yourself; the reply carries our advert and the peers we know (peer exchange) */
  z.object({ type: z.literal('hello'), advert: AdvertSchema }),
  /** ask for our current advert (after seeing a new capsHash) */
  z.object({ type: z.literal('advert') }),
  /**
   * A change of the sender's own state (draining, leaving), acknowledged: gossip
   * may lose it when connections close right after, this does not.
   */
  z.object({ type: z.literal('announce'), heartbeat: HeartbeatSchema })
])
export type MembershipRequest = z.infer<typeof MembershipRequestSchema>

export const HelloReplySchema = z.object({
  advert: AdvertSchema,
  peers: z.array(KnownPeerSchema).max(1024)
})
export type HelloReply = z.infer<typeof HelloReplySchema>
