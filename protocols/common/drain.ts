import type { Stream } from '@libp2p/interface'
import { StreamClosedError } from '@libp2p/utils'

/**
 * Waits until `stream` accepts writes again. Not `stream.onDrain()`: in
 * @libp2p/utils 7.4.1 its promise is created once and never reset, so after a
 * stream's first drain it resolves at once forever and a writer stops waiting
 * for the muxer window: no backpressure, unbounded write buffers.
 */
export async function waitForDrain (stream: Stream, signal?: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { done(); resolve() }
    const onClose = (): void => { done(); reject(new StreamClosedError('stream closed while waiting to write')) }
    const onAbort = (): void => { done(); reject(signal?.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}
