import type { Stream } from '@libp2p/interface'

/**
 * Pauses `stream` from inside one of its 'message' listeners, once
 * `stillWanted()` says so after the current delivery.
 *
 * Not `stream.pause()` right there: in @libp2p/utils 7.4.1 `resume()` hands
 * the bytes buffered while paused to the listeners synchronously and only
 * then tells the muxer to resume. A listener that pauses again during that
 * delivery leaves the stream marked paused while yamux goes back to granting
 * window, so the read buffer grows past the window until the stream is reset
 * (StreamBufferError). A microtask later, resume() has returned and the pause
 * reaches the muxer.
 */
export function pauseAfterDelivery (stream: Stream, stillWanted: () => boolean): void {
  queueMicrotask(() => {
    if (stillWanted() && stream.readStatus === 'readable') stream.pause()
  })
}
