import { describe, expect, it } from 'vitest'
import { BootstrapAddressError, parseBootstrap, peerIdIn } from '../../bootstrap/address.ts'
import { parseApiAddress } from '../../node/api/server.ts'

describe('bootstrap addresses', () => {
  it('takes full multiaddrs and host:port shorthands', () => {
    const id = '12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE'
    const full = parseBootstrap(`/ip4/10.0.0.7/tcp/4170/p2p/${id}`)
    expect(peerIdIn(full)).toBe(id)
    expect(parseBootstrap('10.0.0.7:4170').toString()).toBe('/ip4/10.0.0.7/tcp/4170')
    expect(parseBootstrap('[fd00::7]:4170').toString()).toBe('/ip6/fd00::7/tcp/4170')
    expect(parseBootstrap('gpu-box.lab:4170').toString()).toBe('/dns/gpu-box.lab/tcp/4170')
  })

  it('refuses what cannot be dialled, with an example of what can', () => {
    for (const bad of ['', 'gpu-box', '10.0.0.7:99999', '/ip4/10.0.0.7', '/ip4/10.0.0.300/tcp/1', '/nonsense']) {
      expect(() => parseBootstrap(bad), bad).toThrow(BootstrapAddressError)
    }
    expect(() => parseBootstrap('/ip4/10.0.0.7')).toThrow(/has no TCP port.*10\.0\.0\.1:4170/)
  })
})

describe('control API address', () => {
  it('listens on loopback only', () => {
    expect(parseApiAddress('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 })
    expect(parseApiAddress('[::1]:7170')).toEqual({ host: '::1', port: 7170 })
    expect(() => parseApiAddress('0.0.0.0:7170')).toThrow(/loopback/)
    expect(() => parseApiAddress('10.1.1.1:7170')).toThrow(/loopback/)
    expect(() => parseApiAddress('7170')).toThrow(/HOST:PORT/)
  })
})
