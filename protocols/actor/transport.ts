import type { Logger } from 'pino'
import type { Stream } from '@libp2p/interface'
import { ActorChannel } from './channel.ts'
import { FRAME_READ_TIMEOUT_MS } from './constants.ts'
import { handleActorStream, type RemoteReceiver } from './handler.ts'
import type { RemoteRequest, RemoteTransport } from './types.ts'

/** Opens a stream for `/zp/actor/1.0.0` to a peer (libp2p's dialProtocol in a node). */
export type OpenActorStream = (peer: string, signal: AbortSignal) => Promise<Stream>

export interface ActorTransportOptions {
  /** how long a frame may take once its first byte arrived, both directions (FRAME_READ_TIMEOUT_MS; tests shorten it) */
  frameTimeoutMs?: number
}

/** The actor host's RemoteTransport over libp2p streams: one channel per peer. */
export class ActorTransport implements RemoteTransport {
  readonly #channels = new Map<string, ActorChannel>()
  readonly #open: OpenActorStream
  readonly #log: Logger
  readonly #frameTimeoutMs: number

  constructor (open: OpenActorStream, log: Logger, opts: ActorTransportOptions = {}) {
    this.#open = open
    this.#log = log
    this.#frameTimeoutMs = opts.frameTimeoutMs ?? FRAME_READ_TIMEOUT_MS
  }

  async request (peer: string, req: RemoteRequest, opts: { signal: AbortSignal }): Promise<unknown> {
    let channel = this.#channels.get(peer)
    if (channel == null) {
      channel = new ActorChannel(peer, async (signal) => await this.#open(peer, signal), this.#log, this.#frameTimeoutMs)
      this.#channels.set(peer, channel)
    }
    return await channel.request(req, opts.signal)
  }

  /** Serves an inbound stream from `from` (already authenticated by the connection). */
  accept (stream: Stream, from: string, receiver: RemoteReceiver): void {
    handleActorStream(stream, from, receiver, this.#log, this.#frameTimeoutMs)
  }

  /** Forget a peer's channel (its connection is gone); waiting asks fail as unreachable. */
  forget (peer: string): void {
    this.#channels.get(peer)?.close()
    this.#channels.delete(peer)
  }

  stop (): void {
    for (const channel of this.#channels.values()) channel.close()
    this.#channels.clear()
  }
}
