export const ACTOR_PROTOCOL = '/zp/actor/1.0.0'
/** the envelope version this node speaks; envelopes carry it so a change is refused, not misread */
export const ACTOR_WIRE_VERSION = 1
/**
 * Largest frame either side accepts. Actor messages are control traffic; bulk
 * bytes go over the blob protocol. Kept well below the ~640 KB chunk size at
 * which @libp2p/pnet 3.0.27 corrupts data on private networks (TOOLCHAIN.md).
 */
export const MAX_FRAME_BYTES = 256 * 1024
/** frames read but not yet admitted before the stream is paused (backpressure) */
export const INBOUND_HIGH_WATER = 64
/** concurrent actor streams per connection and direction (one is normal; spares cover reconnects) */
export const MAX_STREAMS = 16
/** how long opening a stream to a peer (dial included) may take */
export const DIAL_TIMEOUT_MS = 10_000
