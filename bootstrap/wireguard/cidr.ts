import { isIPv4 } from 'node:net'

// IPv4 arithmetic for the overlay: WireGuard's AllowedIPs and the node's --listen take plain dotted quads.

export interface Cidr {
  /** the network address, as a 32-bit number */
  network: number
  prefix: number
}

export function ipToInt (ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}

export function intToIp (n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.')
}

/** `10.77.0.0/24`, or the reason when it is not an IPv4 network address with a prefix. */
export function parseCidr (text: string): Cidr | string {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim())
  if (m == null || !isIPv4(m[1]!) || Number(m[2]) > 32) return 'is not an IPv4 network such as 10.77.0.0/24'
  const prefix = Number(m[2])
  const ip = ipToInt(m[1]!)
  const size = 2 ** (32 - prefix)
  const network = ip - (ip % size)
  if (network !== ip) return `has host bits set; the network is ${intToIp(network)}/${prefix}`
  if (prefix > 30) return `has no room for two hosts; use a prefix of 30 or less, such as /24`
  return { network, prefix }
}

export function formatCidr (cidr: Cidr): string {
  return `${intToIp(cidr.network)}/${cidr.prefix}`
}

/** The first and last address a host may take: the network and broadcast addresses are not. */
export function hostRange (cidr: Cidr): { first: number, last: number } {
  return { first: cidr.network + 1, last: cidr.network + 2 ** (32 - cidr.prefix) - 2 }
}

/** Why `ip` cannot be a host's address in `cidr`, or undefined when it can. */
export function addressProblem (ip: string, cidr: Cidr): string | undefined {
  if (!isIPv4(ip)) return `'${ip}' is not an IPv4 address`
  const n = ipToInt(ip)
  const { first, last } = hostRange(cidr)
  if (n === cidr.network) return `${ip} is the network address of ${formatCidr(cidr)}; use ${intToIp(first)} to ${intToIp(last)}`
  if (n === last + 1) return `${ip} is the broadcast address of ${formatCidr(cidr)}; use ${intToIp(first)} to ${intToIp(last)}`
  if (n < first || n > last) return `${ip} is outside the overlay ${formatCidr(cidr)}; use ${intToIp(first)} to ${intToIp(last)} or another --cidr`
  return undefined
}
