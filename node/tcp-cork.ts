import type { Socket } from 'node:net'
import { tcp, type TCPComponents, type TCPOptions } from '@libp2p/tcp'
import type { MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'

/**
 * `@libp2p/tcp`, with each connection's socket writes gathered per tick.
 *
 * A message leaves through several layers that each write their own pieces
 * (a yamux header, the data, a Noise length prefix, the ciphertext, window
 * updates), and `@libp2p/tcp` hands every piece to `socket.write`, which
 * makes a system call each. Corking the socket on the first write of a tick
 * and uncorking it on the next turns them into one `writev`. Nothing waits:
 * the bytes go out when the current tick's work is done, as before.
 */
export function corkedTcp (init: TCPOptions = {}): (components: TCPComponents) => Transport {
  const make = tcp(init)
  return (components) => {
    const inner = make(components)
    return new Proxy(inner, {
      get (target, prop) {
        if (prop === 'dial') {
          return async (ma: Parameters<Transport['dial']>[0], options: Parameters<Transport['dial']>[1]) =>
            await target.dial(ma, { ...options, upgrader: corking(options.upgrader) })
        }
        if (prop === 'createListener') {
          return (options: Parameters<Transport['createListener']>[0]) => target.createListener({ ...options, upgrader: corking(options.upgrader) })
        }
        return forward(target, prop)
      }
    })
  }
}

/** The upgrader, corking each raw connection before it is upgraded. */
function corking (upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get (target, prop) {
      if (prop === 'upgradeInbound' || prop === 'upgradeOutbound') {
        return async (maConn: MultiaddrConnection, opts: unknown) => {
          corkWrites(maConn)
          return await (target[prop] as (c: MultiaddrConnection, o: unknown) => Promise<unknown>).call(target, maConn, opts)
        }
      }
      return forward(target, prop)
    }
  })
}

/** What a proxy passes through: the target's property, its methods bound to it. */
export function forward (target: object, prop: string | symbol): unknown {
  const value: unknown = Reflect.get(target, prop, target)
  return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
}

interface SendResult { sentBytes: number, canSendMore: boolean }
type Sendable = MultiaddrConnection & { socket?: Socket, sendData?: (data: unknown) => SendResult }

/**
 * Wraps the connection's `sendData` (one `socket.write` per piece) in a cork
 * that lasts until the next tick. A corked socket holds what it is given, so
 * its buffer can pass the high-water mark within a tick and `write` then says
 * "full" although the network is not: that would stall the streams above and
 * let them gather large chunks (which `@libp2p/pnet` 3.0.27 corrupts). So a
 * tick that has gathered that much is sent at once, and the caller is told
 * what the socket really holds afterwards.
 */
function corkWrites (maConn: MultiaddrConnection): void {
  const conn = maConn as Sendable
  const socket = conn.socket
  const send = conn.sendData
  // not @libp2p/tcp's connection as we know it: left as it is (test/mesh/transport.test.ts notices)
  if (socket == null || typeof socket.cork !== 'function' || typeof send !== 'function') return
  conn.sendData = (data: unknown) => {
    if (socket.writableCorked === 0 && !socket.destroyed) {
      socket.cork()
      process.nextTick(uncork, socket)
    }
    const result = send.call(conn, data)
    if (!result.canSendMore && socket.writableCorked > 0) {
      socket.uncork()
      return { sentBytes: result.sentBytes, canSendMore: socket.writableLength < socket.writableHighWaterMark }
    }
    return result
  }
}

function uncork (socket: Socket): void {
  if (socket.writableCorked > 0) socket.uncork()
}
