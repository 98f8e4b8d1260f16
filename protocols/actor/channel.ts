import type { Logger } from 'pino'
import type { Stream } from '@libp2p/interface'
import { decodeAs, encode } from '../common/codec.ts'
import { waitForDrain } from '../common/drain.ts'
import { describeError } from '../common/errors.ts'
import { FrameReader, frame } from '../common/framing.ts'
import { raceSignal } from '../common/signals.ts'
import { ACTOR_PROTOCOL, ACTOR_WIRE_VERSION, DIAL_TIMEOUT_MS, MAX_FRAME_BYTES } from './constants.ts'
import { ActorStoppingError, PeerUnreachableError, FrameTooLargeError, UnsupportedVersionError, errorForStatus, isActorError } from './errors.ts'
import { ResponseSchema } from './schema.ts'
import type { RemoteRequest } from './types.ts'

export type OpenStream = (signal: AbortSignal) => Promise<Stream>

interface Pending {
  resolve: (body: unknown) => void
  reject: (err: Error) => void
}

/**
 * The outbound half of `/zp/actor/1.0.0` towards one peer: a single long-lived
 * stream multiplexing many requests, correlated by id. One stream keeps the
 * order of tells from this node to any actor on that peer. When the stream
 * dies, or a reply on it stalls mid-frame, every waiting ask fails with
 * PeerUnreachableError and the next request opens a fresh one.
 */
export class ActorChannel {
  readonly peer: string
  readonly #open: OpenStream
  readonly #log: Logger
  readonly #frameTimeoutMs: number
  #stream: Stream | undefined
  #opening: Promise<Stream> | undefined
  #nextId = 1
  readonly #pending = new Map<number, Pending>()
  #closed = false

  constructor (peer: string, open: OpenStream, log: Logger, frameTimeoutMs: number) {
    this.peer = peer
    this.#open = open
    this.#log = log
    this.#frameTimeoutMs = frameTimeoutMs
  }

  get inFlight (): number {
    return this.#pending.size
  }

  async request (req: RemoteRequest, signal: AbortSignal): Promise<unknown> {
    if (this.#closed) throw new ActorStoppingError('this node is stopping')
    const id = this.#nextId++
    const payload = encode({ v: ACTOR_WIRE_VERSION, id, ...req })
    if (payload.byteLength > MAX_FRAME_BYTES) {
      throw new FrameTooLargeError(`message for '${req.to}' is ${payload.byteLength} bytes, over the ${MAX_FRAME_BYTES}-byte frame limit; send bulk data as a blob`)
    }
    const stream = await this.#stream_(signal)
    let answer: Promise<unknown> | undefined
    if (req.kind === 'ask') {
      const { promise, resolve, reject } = Promise.withResolvers<unknown>()
      this.#pending.set(id, { resolve, reject })
      answer = promise
    }
    let written = false
    try {
      // wait for room before writing, so a request that times out here was never sent
      await waitForDrain(stream, signal)
      stream.send(frame(payload))
      written = true
      if (answer == null) return undefined
      return await raceSignal(answer, signal)
    } catch (err) {
      if (signal.aborted && err === signal.reason) {
        // tell the peer, so its actor skips (or can stop) work nobody waits for
        if (answer != null && written) this.#cancel(stream, id, req.to)
        throw err
      }
      if (isActorError(err)) throw err
      throw new PeerUnreachableError(`lost the stream to peer ${this.peer}: ${describeError(err)}`)
    } finally {
      this.#pending.delete(id)
    }
  }

  #cancel (stream: Stream, id: number, to: string): void {
    if (stream.status !== 'open') return
    try {
      stream.send(frame(encode({ v: ACTOR_WIRE_VERSION, id, kind: 'cancel', to, body: null })))
    } catch {
      // the stream is going away; so is the request
    }
  }

  async #stream_ (signal: AbortSignal): Promise<Stream> {
    if (this.#stream != null && this.#stream.status === 'open') return this.#stream
    // one dial shared by every waiting request, bounded by its own timeout so
    // that one impatient caller does not abort it for the others
    this.#opening ??= this.#connect().finally(() => { this.#opening = undefined })
    return await raceSignal(this.#opening, signal)
  }

  async #connect (): Promise<Stream> {
    let stream: Stream
    try {
      stream = await this.#open(AbortSignal.timeout(DIAL_TIMEOUT_MS))
    } catch (err) {
      if ((err as Error).name === 'UnsupportedProtocolError') {
        throw new UnsupportedVersionError(`peer ${this.peer} does not speak ${ACTOR_PROTOCOL}; it may run an incompatible zp-mesh version`)
      }
      throw new PeerUnreachableError(`cannot reach peer ${this.peer}: ${describeError(err)}`)
    }
    if (this.#closed) {
      stream.abort(new Error('node stopping'))
      throw new ActorStoppingError('this node is stopping')
    }
    new FrameReader(stream, {
      maxFrameBytes: MAX_FRAME_BYTES,
      frameTimeoutMs: this.#frameTimeoutMs,
      onFrame: (f) => { this.#onReply(f) },
      onError: (err) => {
        this.#log.warn({ peer: this.peer, err: describeError(err) }, 'resetting the actor stream to a peer whose replies cannot be read')
        stream.abort(err)
      }
    })
    stream.addEventListener('close', (evt) => {
      if (this.#stream === stream) this.#stream = undefined
      const why = evt.error != null ? `: ${describeError(evt.error)}` : ''
      for (const [id, p] of this.#pending) {
        this.#pending.delete(id)
        p.reject(new PeerUnreachableError(`connection to peer ${this.peer} closed before it answered${why}`))
      }
    })
    this.#stream = stream
    return stream
  }

  #onReply (bytes: Uint8Array): void {
    let res
    try {
      res = decodeAs(ResponseSchema, bytes, 'actor reply')
    } catch (err) {
      this.#log.warn({ peer: this.peer, err: describeError(err) }, 'dropped an unreadable actor reply')
      return
    }
    const pending = this.#pending.get(res.id)
    if (pending == null) {
      // replies to tells only come back when the peer refused them
      if (res.status !== 'ok') this.#log.warn({ peer: this.peer, status: res.status, reason: res.message }, 'peer refused a message')
      return
    }
    this.#pending.delete(res.id)
    if (res.status === 'ok') pending.resolve(res.body)
    else pending.reject(errorForStatus(res.status, res.message ?? res.status))
  }

  close (): void {
    this.#closed = true
    this.#stream?.abort(new Error('node stopping'))
    this.#stream = undefined
  }
}
