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
/**
 * How long a frame may take to arrive once its first byte has; a peer that
 * stops mid-frame gets its stream reset after this. A frame leaves its sender
 * in one write, so the rest follows at link speed: even the largest (256 KiB)
 * needs under 5 s down to ~420 kbit/s. Well below the 30 s default ask timeout,
 * so asks queued behind a stalled reply fail as unreachable and the next ones
 * get a fresh stream long before they would time out. Idle time between frames
 * is not limited: a channel stream lives as long as its connection.
 */
export const FRAME_READ_TIMEOUT_MS = 5_000
