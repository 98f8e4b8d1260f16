import type { Logger } from 'pino'
import type { Stream } from '@libp2p/interface'
import type { RemoteRequest, RemoteTransport } from '../../actors/runtime/types.ts'
import { ActorChannel } from './channel.ts'
import { handleActorStream, type RemoteReceiver } from './handler.ts'

/** Opens a stream for `/zp/actor/1.0.0` to a peer (libp2p's dialProtocol in a node). */
export type OpenActorStream = (peer: string, signal: AbortSignal) => Promise<Stream>

/** The actor host's RemoteTransport over libp2p streams: one channel per peer. */
export class ActorTransport implements RemoteTransport {
  readonly #channels = new Map<string, ActorChannel>()
  readonly #open: OpenActorStream
  readonly #log: Logger

  constructor (open: OpenActorStream, log: Logger) {
    this.#open = open
    this.#log = log
  }

  async request (peer: string, req: RemoteRequest, opts: { signal: AbortSignal }): Promise<unknown> {
    let channel = this.#channels.get(peer)
    if (channel == null) {
      channel = new ActorChannel(peer, async (signal) => await this.#open(peer, signal), this.#log)
      this.#channels.set(peer, channel)
    }
    return await channel.request(req, opts.signal)
  }

  /** Serves an inbound stream from `from` (already authenticated by the connection). */
  accept (stream: Stream, from: string, receiver: RemoteReceiver): void {
    handleActorStream(stream, from, receiver, this.#log)
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
