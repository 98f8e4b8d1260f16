import { z } from 'zod'
import { CapabilityReportSchema } from './capabilities.ts'

const Multiaddrs = z.array(z.string().min(1).max(512)).max(32)

export const SlotsSchema = z.object({
  total: z.number().int().nonnegative(),
  free: z.number().int().nonnegative()
})
export type Slots = z.infer<typeof SlotsSchema>

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
  capsHash: z.string().max(128)
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
