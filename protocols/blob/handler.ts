import type { Logger } from 'pino'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import { decode, encode } from '../common/codec.ts'
import { waitForDrain } from '../common/drain.ts'
import { describeError } from '../common/errors.ts'
import { FrameDecoder, frame } from '../common/framing.ts'
import { deadline } from '../common/signals.ts'
import { summarizeIssues } from '../common/validate.ts'
import { BLOB_CHUNK_BYTES, BLOB_WIRE_VERSION, MAX_CONTROL_FRAME_BYTES, REQUEST_TIMEOUT_MS, STALL_TIMEOUT_MS } from './constants.ts'
import { BlobRequestSchema, VersionProbeSchema, type BlobErrorStatus, type BlobRequest } from './schema.ts'
import type { BlobReader, BlobSource } from './types.ts'

export interface BlobServerOptions {
  source: BlobSource
  /** whether `peer` may fetch `hash`; a range is authorized by the blob it is cut from */
  authorize: (peer: string, hash: string) => boolean
  log: Logger
  /** aborted when the node stops: transfers in progress are cut */
  signal?: AbortSignal
}

/**
 * Serves one `/zp/blob/1.0.0` stream: reads the request, answers with a
 * header, streams the bytes with backpressure (room before every chunk), and
 * closes its write side. Refusals are answered with a status, never by
 * dropping the stream. Settles when the stream is done; never rejects.
 */
export async function handleBlobStream (stream: Stream, from: string, opts: BlobServerOptions): Promise<void> {
  const { log } = opts
  // the stream's whole life: the client going away or the node stopping ends the transfer
  const gone = new AbortController()
  const onClose = (): void => { gone.abort(new Error('stream closed')) }
  stream.addEventListener('close', onClose)
  const onStop = (): void => { gone.abort(opts.signal?.reason) }
  opts.signal?.addEventListener('abort', onStop, { once: true })
  if (opts.signal?.aborted === true) onStop()

  let reader: BlobReader | undefined
  try {
    const bytes = await readRequest(stream, gone.signal)
    const req = parseRequest(bytes)
    if ('status' in req) {
      log.warn({ peer: from, reason: req.message }, 'refused an invalid blob request')
      await refuse(stream, req.status, req.message, gone.signal)
      return
    }
    if (!opts.authorize(from, req.hash)) {
      log.warn({ peer: from, hash: req.hash }, 'refused a blob to a peer without access')
      await refuse(stream, 'not_authorized', `peer ${from} may not fetch blob ${req.hash}: a node serves a blob only to trusted peers and to the workers a campaign using it was leased to`, gone.signal)
      return
    }
    try {
      reader = await opts.source.openReader(req.hash)
    } catch (err) {
      log.error({ peer: from, hash: req.hash, err: describeError(err) }, 'cannot open a blob to serve it')
      await refuse(stream, 'unavailable', `this node holds blob ${req.hash} but cannot read it: ${describeError(err)}`, gone.signal)
      return
    }
    if (reader == null) {
      log.debug({ peer: from, hash: req.hash }, 'asked for a blob this node does not hold')
      await refuse(stream, 'not_found', `this node does not hold blob ${req.hash}; fetch it from the campaign's coordinator`, gone.signal)
      return
    }
    const start = req.start ?? 0
    const end = req.end ?? reader.size
    if (start > end || end > reader.size) {
      await refuse(stream, 'invalid', `range [${start}, ${end}) is outside blob ${req.hash} of ${reader.size} bytes`, gone.signal)
      return
    }
    if (req.max != null && end - start > req.max) {
      await refuse(stream, 'too_large', `the ${end - start} bytes asked for exceed the ${req.max} bytes the client accepts`, gone.signal)
      return
    }
    const started = performance.now()
    await send(stream, frame(encode({ v: BLOB_WIRE_VERSION, status: 'ok', size: end - start })), gone.signal)
    for await (const chunk of reader.chunks(start, end, BLOB_CHUNK_BYTES)) {
      await send(stream, chunk, gone.signal)
    }
    await closeWrite(stream, gone.signal)
    log.debug({ peer: from, hash: req.hash, bytes: end - start, ms: Math.round(performance.now() - started) }, 'served a blob')
  } catch (err) {
    // the client left, stalled, or the node is stopping; a reset tells the client the body is incomplete
    log.debug({ peer: from, err: describeError(err) }, 'blob transfer ended early')
    stream.abort(err instanceof Error ? err : new Error(describeError(err)))
  } finally {
    await reader?.close().catch(() => {})
    stream.removeEventListener('close', onClose)
    opts.signal?.removeEventListener('abort', onStop)
  }
}

/** The request is the first frame; whatever the client sends after it is ignored. */
async function readRequest (stream: Stream, signal: AbortSignal): Promise<Uint8Array> {
  const decoder = new FrameDecoder(MAX_CONTROL_FRAME_BYTES)
  const got = Promise.withResolvers<Uint8Array>()
  let request: Uint8Array | undefined
  const onMessage = (evt: StreamMessageEvent): void => {
    if (request != null) return
    try {
      for (const f of decoder.push(evt.data)) {
        request = f
        got.resolve(f)
        return
      }
    } catch (err) {
      got.reject(err)
    }
  }
  const onEnd = (): void => { got.reject(new Error('the client closed the stream before sending a whole request')) }
  const wait = deadline(REQUEST_TIMEOUT_MS, signal)
  const onAbort = (): void => { got.reject(wait.signal.reason) }
  stream.addEventListener('message', onMessage)
  stream.addEventListener('remoteCloseWrite', onEnd)
  wait.signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await got.promise
  } finally {
    wait.clear()
    wait.signal.removeEventListener('abort', onAbort)
    stream.removeEventListener('remoteCloseWrite', onEnd)
    // keep a listener, so bytes a client sends after its request are dropped instead of filling the read buffer
  }
}

function parseRequest (bytes: Uint8Array): BlobRequest | { status: BlobErrorStatus, message: string } {
  let raw: unknown
  try {
    raw = decode(bytes)
  } catch (err) {
    return { status: 'invalid', message: describeError(err) }
  }
  const version = VersionProbeSchema.safeParse(raw)
  if (!version.success) return { status: 'invalid', message: 'request has no version field "v"' }
  if (version.data.v !== BLOB_WIRE_VERSION) {
    return { status: 'unsupported_version', message: `this node speaks blob request v${BLOB_WIRE_VERSION}, got v${version.data.v}; upgrade the older node` }
  }
  const parsed = BlobRequestSchema.safeParse(raw)
  if (!parsed.success) return { status: 'invalid', message: `invalid blob request: ${summarizeIssues(parsed.error)}` }
  return parsed.data
}

async function refuse (stream: Stream, status: BlobErrorStatus, message: string, signal: AbortSignal): Promise<void> {
  await send(stream, frame(encode({ v: BLOB_WIRE_VERSION, status, message })), signal)
  await closeWrite(stream, signal)
}

/** Waits for room (bounded by the stall timeout), then writes. */
async function send (stream: Stream, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  if (stream.writableNeedsDrain) {
    const stall = deadline(STALL_TIMEOUT_MS, signal)
    try {
      await waitForDrain(stream, stall.signal)
    } finally {
      stall.clear()
    }
  }
  stream.send(bytes)
}

/** Flushes what is queued and closes the write side; the client closing its own side ends the stream. */
async function closeWrite (stream: Stream, signal: AbortSignal): Promise<void> {
  const stall = deadline(STALL_TIMEOUT_MS, signal)
  try {
    await stream.close({ signal: stall.signal })
  } finally {
    stall.clear()
  }
}
