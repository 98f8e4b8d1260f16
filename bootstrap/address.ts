import { isIPv6 } from 'node:net'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'

export class BootstrapAddressError extends Error {
  override name = 'BootstrapAddressError'
}

const EXAMPLE = '/ip4/10.0.0.1/tcp/4170/p2p/12D3KooW… (or simply 10.0.0.1:4170)'

/**
 * A bootstrap address as people type it: a full multiaddr, or `host:port`
 * (`[v6]:port` for IPv6). Anything else is refused with an example.
 */
export function parseBootstrap (text: string): Multiaddr {
  const input = text.trim()
  if (input === '') throw new BootstrapAddressError(`empty bootstrap address; expected ${EXAMPLE}`)
  let addr: Multiaddr
  if (input.startsWith('/')) {
    try {
      addr = multiaddr(input)
    } catch (err) {
      throw new BootstrapAddressError(`invalid bootstrap multiaddr '${input}': ${(err as Error).message}; expected ${EXAMPLE}`)
    }
  } else {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:/\s]+)):(\d{1,5})$/.exec(input)
    const port = Number(m?.[3])
    if (m == null || port < 1 || port > 65535) {
      throw new BootstrapAddressError(`invalid bootstrap address '${input}'; expected ${EXAMPLE}`)
    }
    const host = m[1] ?? m[2]!
    const proto = m[1] != null || isIPv6(host) ? 'ip6' : /^[\d.]+$/.test(host) ? 'ip4' : 'dns'
    try {
      addr = multiaddr(`/${proto}/${host}/tcp/${port}`)
    } catch (err) {
      throw new BootstrapAddressError(`invalid bootstrap address '${input}': ${(err as Error).message}`)
    }
  }
  const names = addr.getComponents().map(c => c.name)
  if (!names.includes('tcp')) {
    throw new BootstrapAddressError(`bootstrap address '${input}' has no TCP port; expected ${EXAMPLE}`)
  }
  return addr
}

/** The peer ID named by a `/p2p/…` component, if any. */
export function peerIdIn (addr: Multiaddr): string | undefined {
  return addr.getComponents().find(c => c.name === 'p2p')?.value
}
