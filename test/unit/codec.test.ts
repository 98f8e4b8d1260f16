import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import * as varint from 'uint8-varint'
import { DecodeError, decode, decodeAs, encode } from '../../protocols/common/codec.ts'
import { BadFramingError, FrameDecoder, FrameTooLargeError, frame } from '../../protocols/common/framing.ts'
import { RequestSchema } from '../../protocols/actor/schema.ts'
import { HeartbeatSchema } from '../../protocols/membership/schema.ts'

describe('msgpack codec', () => {
  it('round-trips plain data, binary included', () => {
    const value = { a: 1, b: 'two', c: [true, null, 3.5], d: new Uint8Array([1, 2, 3]), e: { nested: -7 } }
    const back = decode(encode(value)) as typeof value
    expect({ ...back, d: [...back.d] }).toEqual({ ...value, d: [1, 2, 3] })
  })

  it('throws DecodeError on bytes that are not msgpack', () => {
    expect(() => decode(new Uint8Array([0x92]))).toThrow(DecodeError)
    expect(() => decode(new Uint8Array([0xc7]))).toThrow(DecodeError)
  })

  it('never lets __proto__ in a frame reach an object prototype', () => {
    // {"__proto__": {"polluted": true}} hand-encoded
    const bytes = Buffer.from('81a95f5f70726f746f5f5f81a8706f6c6c75746564c3', 'hex')
    const value = decode(bytes) as Record<string, unknown>
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('names the offending field when a schema rejects a frame', () => {
    const bytes = encode({ v: 1, id: 1, kind: 'ask', to: '', body: null })
    expect(() => decodeAs(RequestSchema, bytes, 'request')).toThrow(/invalid request: to: /)
    const hb = encode({ v: 1, name: 'x', incarnation: 1, seq: 0, state: 'asleep', multiaddrs: [], slots: { total: 1, free: 1 }, capsHash: '' })
    expect(() => decodeAs(HeartbeatSchema, hb, 'heartbeat')).toThrow(/state: /)
  })

  it('rejects oddities msgpack can express but our schemas do not allow', () => {
    const schema = z.object({ n: z.number() })
    expect(schema.safeParse(decode(Buffer.from('81a16ec1', 'hex'))).success).toBe(false) // n: reserved 0xc1
    expect(schema.safeParse(decode(Buffer.from('81a16ed6ff00000001', 'hex'))).success).toBe(false) // n: timestamp ext
  })
})

describe('length-prefixed framing', () => {
  it('splits a byte stream into the frames written, whatever the chunking', () => {
    const frames = [new Uint8Array(0), new Uint8Array([1]), new Uint8Array(300).fill(7), new Uint8Array(70_000).fill(9)]
    const wire = Buffer.concat(frames.map(frame))
    for (const chunk of [1, 3, 127, 4096, wire.length]) {
      const decoder = new FrameDecoder(100_000)
      const out: Uint8Array[] = []
      for (let i = 0; i < wire.length; i += chunk) out.push(...decoder.push(wire.subarray(i, i + chunk)))
      expect(out.map(f => f.byteLength)).toEqual([0, 1, 300, 70_000])
      expect(decoder.buffered).toBe(0)
    }
  })

  it('refuses an oversized frame from its length prefix alone', () => {
    const decoder = new FrameDecoder(1024)
    const gen = decoder.push(varint.encode(1025))
    expect(() => [...gen]).toThrow(FrameTooLargeError)
  })

  it('accepts a tail of one frame plus several more in a single large chunk', () => {
    const decoder = new FrameDecoder(200_000)
    const big = frame(new Uint8Array(150_000))
    const small = Array.from({ length: 50 }, () => frame(new Uint8Array(4000)))
    expect([...decoder.push(big.subarray(0, 100_000))]).toHaveLength(0)
    const rest = Buffer.concat([big.subarray(100_000), ...small])
    expect([...decoder.push(rest)]).toHaveLength(51)
  })

  it('rejects a length prefix that never ends', () => {
    const decoder = new FrameDecoder(1024)
    expect(() => [...decoder.push(new Uint8Array(12).fill(0xff))]).toThrow(BadFramingError)
  })

  it('reports the bytes of an unfinished frame (a truncated stream)', () => {
    const decoder = new FrameDecoder(1024)
    const f = frame(new Uint8Array(100))
    expect([...decoder.push(f.subarray(0, 40))]).toHaveLength(0)
    expect(decoder.buffered).toBe(40)
  })
})
