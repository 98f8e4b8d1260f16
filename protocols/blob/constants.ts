export const BLOB_PROTOCOL = '/zp/blob/1.0.0'
export const BLOB_WIRE_VERSION = 1
/**
 * Bytes per frame on the wire. Well below the ~640 KB at which @libp2p/pnet
 * 3.0.27 corrupts data on private networks (TOOLCHAIN.md).
 */
export const BLOB_CHUNK_BYTES = 256 * 1024
/** the largest blob a node stores or accepts unless configured otherwise */
export const DEFAULT_MAX_BLOB_BYTES = 16 * 1024 * 1024 * 1024
/** the request and the response header are small msgpack frames; anything bigger is refused from its prefix */
export const MAX_CONTROL_FRAME_BYTES = 4096
/** concurrent blob streams per connection and direction (one per transfer) */
export const BLOB_MAX_STREAMS = 32
/** how long a server waits for the request after the stream opened */
export const REQUEST_TIMEOUT_MS = 10_000
/**
 * A transfer that makes no progress for this long is abandoned: on the server,
 * a client that stopped reading; on the client, a server that stopped sending.
 * Whole transfers have no time limit of their own (a 16 GiB blob takes minutes);
 * callers add one with their signal.
 */
export const STALL_TIMEOUT_MS = 60_000
/** how long opening a stream to a peer (dial included) may take */
export const DIAL_TIMEOUT_MS = 10_000
/**
 * Received bytes a client holds before it pauses the stream, while they wait
 * for the disk. Pausing stops the muxer's window updates, so the sender stalls
 * within one window (node/libp2p.ts STREAM_WINDOW_BYTES) instead of the read
 * buffer overflowing.
 */
export const CLIENT_HIGH_WATER_BYTES = 2 * 1024 * 1024
