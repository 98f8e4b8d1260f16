import type { Logger } from 'pino'
import type { Stream } from '@libp2p/interface'
import { decode, encode } from '../common/codec.ts'
import { describeError } from '../common/errors.ts'
import { FrameReader, FrameStalledError, FrameTooLargeError, frame } from '../common/framing.ts'
import { pauseAfterDelivery } from '../common/pause.ts'
import { deadline } from '../common/signals.ts'
import { summarizeIssues } from '../common/validate.ts'
import { ACTOR_WIRE_VERSION, FRAME_READ_TIMEOUT_MS, INBOUND_HIGH_WATER, MAX_FRAME_BYTES } from './constants.ts'
import { isActorError, type ActorStatus } from './errors.ts'
import { RequestSchema, VersionProbeSchema } from './schema.ts'
import type { RemoteRequest } from './types.ts'

/** What the handler needs from the actor host. */
export interface RemoteReceiver {
  receiveRemote: (from: string, req: RemoteRequest, signal?: AbortSignal, cancel?: AbortSignal) => Promise<{ reply?: Promise<unknown> }>
}

/**
 * The inbound half of `/zp/actor/1.0.0` for one stream. Frames are admitted
 * strictly in order; while a mailbox is full the handler stops reading, the
 * stream pauses, and the sender's writes stall: backpressure end to end.
 * Nothing a peer sends can crash the node: bad frames get an error status
 * (id 0 when the frame could not be read at all), an unreadable length or a
 * frame that stalls mid-way (`frameTimeoutMs`) closes the stream, and the node
 * carries on.
 */
export function handleActorStream (stream: Stream, from: string, receiver: RemoteReceiver, log: Logger, frameTimeoutMs = FRAME_READ_TIMEOUT_MS): void {
  const queue: Uint8Array[] = []
  const closed = new AbortController()
  let pumping = false
  let paused = false
  /** a frame could not be read: nothing after it can be trusted */
  let refused = false
  /** the remote closed its writing side: finish the replies owed, then close ours */
  let remoteDone = false
  let owed = 0
  /** asks admitted and not yet answered, so a cancel frame can reach them */
  const cancels = new Map<number, AbortController>()

  const closeWhenDone = (): void => {
    if (remoteDone && !refused && !pumping && queue.length === 0 && owed === 0 && stream.status === 'open') {
      void stream.close().catch(() => {})
    }
  }

  const respond = (id: number, status: ActorStatus, fields: { body?: unknown, message?: string } = {}): void => {
    if (stream.status !== 'open') return
    let payload: Uint8Array
    try {
      payload = encode({ v: ACTOR_WIRE_VERSION, id, status, ...fields })
    } catch (err) {
      payload = encode({ v: ACTOR_WIRE_VERSION, id, status: 'actor_failed', message: `reply could not be encoded: ${describeError(err)}` })
    }
    if (payload.byteLength > MAX_FRAME_BYTES) {
      payload = encode({ v: ACTOR_WIRE_VERSION, id, status: 'frame_too_large', message: `reply of ${payload.byteLength} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame limit` })
    }
    try {
      stream.send(frame(payload))
    } catch (err) {
      log.debug({ peer: from, err: describeError(err) }, 'could not send actor reply')
    }
  }

  const refuseAndClose = (status: ActorStatus, message: string): void => {
    refused = true
    queue.length = 0
    log.warn({ peer: from, status, reason: message }, 'closing actor stream after a bad frame')
    respond(0, status, { message })
    // flush the refusal, then reset: the peer must not keep this stream, even if it reads nothing either
    const flush = deadline(frameTimeoutMs)
    void stream.close({ signal: flush.signal }).catch(() => {}).finally(() => {
      flush.clear()
      stream.abort(new Error(message))
    })
  }

  const admit = async (bytes: Uint8Array): Promise<void> => {
    let raw: unknown
    try {
      raw = decode(bytes)
    } catch (err) {
      log.warn({ peer: from, bytes: bytes.byteLength }, 'received a frame that is not msgpack')
      respond(0, 'invalid_message', { message: describeError(err) })
      return
    }
    const id = idOf(raw)
    const version = VersionProbeSchema.safeParse(raw)
    if (!version.success) {
      respond(id, 'invalid_message', { message: 'envelope has no version field "v"' })
      return
    }
    if (version.data.v !== ACTOR_WIRE_VERSION) {
      respond(id, 'unsupported_version', { message: `this node speaks actor envelope v${ACTOR_WIRE_VERSION}, got v${version.data.v}; upgrade the older node` })
      return
    }
    const parsed = RequestSchema.safeParse(raw)
    if (!parsed.success) {
      log.warn({ peer: from, reason: summarizeIssues(parsed.error) }, 'received an invalid actor envelope')
      respond(id, 'invalid_message', { message: `invalid envelope: ${summarizeIssues(parsed.error)}` })
      return
    }
    const req = parsed.data
    if (req.kind === 'cancel') {
      cancels.get(req.id)?.abort(new Error('the asker stopped waiting'))
      return
    }
    const cancel = req.kind === 'ask' ? new AbortController() : undefined
    if (cancel != null) cancels.set(req.id, cancel)
    let admitted: { reply?: Promise<unknown> }
    try {
      admitted = await receiver.receiveRemote(from, { kind: req.kind, to: req.to, body: req.body, ttlMs: req.ttlMs }, closed.signal, cancel?.signal)
    } catch (err) {
      cancels.delete(req.id)
      if (closed.signal.aborted) return
      const status: ActorStatus = isActorError(err) ? err.status : 'actor_failed'
      log.debug({ peer: from, actor: req.to, status, reason: describeError(err) }, 'refused remote message')
      respond(req.id, status, { message: describeError(err) })
      return
    }
    if (admitted.reply == null) return
    owed++
    admitted.reply.then(
      body => { respond(req.id, 'ok', { body }) },
      err => {
        // a cancelled ask has nobody to answer
        if (cancel?.signal.aborted !== true) respond(req.id, isActorError(err) ? err.status : 'actor_failed', { message: describeError(err) })
      }
    ).finally(() => {
      cancels.delete(req.id)
      owed--
      closeWhenDone()
    })
  }

  const pump = async (): Promise<void> => {
    if (pumping) return
    pumping = true
    try {
      for (let next = queue.shift(); next != null; next = queue.shift()) {
        await admit(next)
        if (paused && queue.length < INBOUND_HIGH_WATER / 2) {
          paused = false
          reader.resume()
        }
      }
    } finally {
      pumping = false
    }
    closeWhenDone()
  }

  const reader = new FrameReader(stream, {
    maxFrameBytes: MAX_FRAME_BYTES,
    frameTimeoutMs,
    onFrame: (f) => {
      queue.push(f)
      if (!paused && queue.length >= INBOUND_HIGH_WATER) {
        paused = true
        pauseAfterDelivery(stream, () => paused)
      }
      void pump()
    },
    onError: (err) => {
      const status: ActorStatus = err instanceof FrameTooLargeError ? 'frame_too_large' : err instanceof FrameStalledError ? 'timeout' : 'invalid_message'
      refuseAndClose(status, describeError(err))
    }
  })

  const reportTruncation = (): void => {
    if (reader.buffered > 0 && !refused) {
      log.warn({ peer: from, bytes: reader.buffered }, 'actor stream closed in the middle of a frame; partial frame dropped')
    }
  }
  stream.addEventListener('remoteCloseWrite', () => {
    remoteDone = true
    reportTruncation()
    closeWhenDone()
  })
  stream.addEventListener('close', () => {
    closed.abort(new Error('stream closed'))
    for (const c of cancels.values()) c.abort(new Error('the asker\'s connection closed'))
    if (!remoteDone) reportTruncation()
  })
}

function idOf (raw: unknown): number {
  const id = (raw as { id?: unknown } | null)?.id
  return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? id : 0
}
