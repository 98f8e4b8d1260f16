/** gossipsub topic carrying every node's signed heartbeat */
export const HEARTBEAT_TOPIC = '/zp/membership/1'
export const MEMBERSHIP_WIRE_VERSION = 1
/** the public actor every node runs to answer hellos and advert requests */
export const MEMBERSHIP_ACTOR = 'membership'
/** largest heartbeat accepted from gossip */
export const MAX_HEARTBEAT_BYTES = 8 * 1024
/** GPUs listed in a heartbeat's load (the rest are left out), so it stays well under MAX_HEARTBEAT_BYTES */
export const MAX_LOAD_GPUS = 32
