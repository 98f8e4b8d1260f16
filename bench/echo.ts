import type { Stream } from '@libp2p/interface'
import { z } from 'zod'
import type { ActorDefinition } from '../actors/runtime/types.ts'
import { waitForDrain } from '../protocols/common/drain.ts'
import { FrameDecoder, frame } from '../protocols/common/framing.ts'

// What both ends of the actor suite share: the echo actor, the raw echo protocol, and the message they carry.

export const ECHO_ACTOR = 'bench-echo'
/** answers with its process's CPU time, so the bench can charge each measured window with both sides' CPU */
export const CPU_ACTOR = 'bench-cpu'
/** request/response with no actor runtime: the same framing as /zp/actor, bytes echoed in order */
export const ECHO_PROTOCOL = '/zp-bench/echo/1.0.0'
const MAX_ECHO_FRAME = 64 * 1024

/** A worker's progress report to its coordinator: the size (95 bytes as msgpack) and shape of everyday control traffic. */
export const ProgressSchema = z.object({
  type: z.literal('progress'),
  campaign: z.string(),
  task: z.number().int(),
  worker: z.string(),
  rows: z.number().int(),
  elapsedMs: z.number(),
  done: z.boolean()
})
export type Progress = z.infer<typeof ProgressSchema>

export const PROGRESS: Progress = {
  type: 'progress',
  campaign: 'c-7f3a',
  task: 1234,
  worker: '12D3KooWHq5tu',
  rows: 4096,
  elapsedMs: 812.5,
  done: false
}

/** Replies with what it was sent, validated by the same kind of schema a real actor uses. */
export function echoActor (): ActorDefinition<Progress> {
  return { access: 'public', schema: ProgressSchema, create: () => ({ receive: msg => msg }) }
}

export function cpuActor (): ActorDefinition<'usage'> {
  return { access: 'public', schema: z.literal('usage'), create: () => ({ receive: () => process.cpuUsage() }) }
}

/** Serves one raw echo stream: every length-prefixed frame is written straight back. */
export function serveRawEcho (stream: Stream): void {
  const decoder = new FrameDecoder(MAX_ECHO_FRAME)
  stream.addEventListener('message', (evt) => {
    try {
      for (const payload of decoder.push(evt.data)) stream.send(frame(payload))
    } catch (err) {
      stream.abort(err as Error)
    }
  })
}

/**
 * Requests over one raw echo stream, many in flight at once (pipelined, like
 * the actor channel multiplexes asks on one stream). The echo answers in
 * order, so replies match requests first in, first out.
 */
export class RawEchoClient {
  readonly #stream: Stream
  readonly #waiting: Array<PromiseWithResolvers<Uint8Array>> = []

  constructor (stream: Stream) {
    this.#stream = stream
    const decoder = new FrameDecoder(MAX_ECHO_FRAME)
    stream.addEventListener('message', (evt) => {
      for (const payload of decoder.push(evt.data)) this.#waiting.shift()?.resolve(payload)
    })
    stream.addEventListener('close', () => {
      for (const w of this.#waiting.splice(0)) w.reject(new Error('raw echo stream closed before it answered'))
    })
  }

  async request (payload: Uint8Array): Promise<Uint8Array> {
    const reply = Promise.withResolvers<Uint8Array>()
    this.#waiting.push(reply)
    // same order as the actor channel: room first, then write
    await waitForDrain(this.#stream)
    this.#stream.send(frame(payload))
    return await reply.promise
  }
}
