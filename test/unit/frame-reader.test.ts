import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Stream } from '@libp2p/interface'
import { FrameReader, FrameStalledError, frame } from '../../protocols/common/framing.ts'

const TIMEOUT = 1000

/** The part of a stream the reader uses: message events, read status, resume; pause() is what the handler does. */
class FakeStream extends EventTarget {
  readStatus: 'readable' | 'paused' = 'readable'
  deliver (data: Uint8Array): void {
    this.dispatchEvent(Object.assign(new Event('message'), { data }))
  }

  pause (): void { this.readStatus = 'paused' }
  resume (): void { this.readStatus = 'readable' }
}

function reader (): { stream: FakeStream, reader: FrameReader, frames: Uint8Array[], errors: Error[] } {
  const stream = new FakeStream()
  const frames: Uint8Array[] = []
  const errors: Error[] = []
  const r = new FrameReader(stream as unknown as Stream, {
    maxFrameBytes: 1024,
    frameTimeoutMs: TIMEOUT,
    onFrame: (f) => { frames.push(f) },
    onError: (err) => { errors.push(err) }
  })
  return { stream, reader: r, frames, errors }
}

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)

beforeEach(() => { vi.useFakeTimers() })
afterEach(() => { vi.useRealTimers() })

describe('FrameReader deadlines', () => {
  it('reports a frame not whole within the timeout of its first byte, and reads nothing after', () => {
    const { stream, frames, errors } = reader()
    stream.deliver(frame(bytes(10)).subarray(0, 4))
    vi.advanceTimersByTime(TIMEOUT - 1)
    expect(errors).toEqual([])
    vi.advanceTimersByTime(1)
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(FrameStalledError)
    expect(errors[0]).toMatchObject({ bytes: 4, timeoutMs: TIMEOUT })
    stream.deliver(frame(bytes(10)).subarray(4))
    expect(frames).toEqual([])
  })

  it('does not extend the deadline for bytes that trickle in', () => {
    const { stream, errors } = reader()
    const f = frame(bytes(100))
    for (let i = 0; i < 10; i++) {
      stream.deliver(f.subarray(i, i + 1))
      vi.advanceTimersByTime(TIMEOUT / 8)
    }
    expect(errors).toHaveLength(1)
    expect(errors[0]).toBeInstanceOf(FrameStalledError)
  })

  it('leaves idle time between frames unlimited, and gives each frame its own deadline', () => {
    const { stream, frames, errors } = reader()
    stream.deliver(frame(bytes(10, 1)))
    vi.advanceTimersByTime(TIMEOUT * 100)
    const second = frame(bytes(10, 2))
    const third = frame(bytes(10, 3))
    stream.deliver(second.subarray(0, 5))
    vi.advanceTimersByTime(TIMEOUT - 100)
    // the second frame ends and the third begins in one chunk: the third's deadline starts now
    stream.deliver(new Uint8Array([...second.subarray(5), ...third.subarray(0, 5)]))
    vi.advanceTimersByTime(TIMEOUT - 100)
    stream.deliver(third.subarray(5))
    vi.advanceTimersByTime(TIMEOUT * 100)
    expect(errors).toEqual([])
    expect(frames.map(f => f[0])).toEqual([1, 2, 3])
  })

  it('does not count time this side kept the stream paused; after resume the frame gets a fresh deadline', () => {
    const { stream, reader: r, errors } = reader()
    stream.deliver(frame(bytes(10)).subarray(0, 4))
    stream.pause()
    vi.advanceTimersByTime(TIMEOUT * 10)
    expect(errors).toEqual([])
    r.resume()
    vi.advanceTimersByTime(TIMEOUT - 1)
    expect(errors).toEqual([])
    vi.advanceTimersByTime(1)
    expect(errors[0]).toBeInstanceOf(FrameStalledError)
  })

  it('stops the deadline once the remote closed its side: a partial frame is then truncated, not late', () => {
    const { stream, reader: r, errors } = reader()
    stream.deliver(frame(bytes(10)).subarray(0, 4))
    stream.dispatchEvent(new Event('remoteCloseWrite'))
    vi.advanceTimersByTime(TIMEOUT * 10)
    expect(errors).toEqual([])
    expect(r.buffered).toBe(4)
  })
})
