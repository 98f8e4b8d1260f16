import { isIP } from 'node:net'

// What goes into the certificates, decided before any key exists: the server certificate's subject alternative
// names, the client names (each one a file name too) and the validity.

export class CertsInputError extends Error {
  override name = 'CertsInputError'
}

export interface SubjectNames {
  dns: string[]
  ips: string[]
}

const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
/** a client's name is its certificate's CN and its files' name */
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** the longest validity browsers accept for a TLS server certificate (Apple's rule, followed by others) */
export const MAX_DAYS = 825
export const DEFAULT_DAYS = 365
export const DEFAULT_CLIENTS = ['admin']

function isDnsName (name: string): boolean {
  return name.length <= 253 && name.split('.').every(label => DNS_LABEL.test(label))
}

/**
 * The server certificate's SANs: the names and IPs given, else localhost, 127.0.0.1 and this machine's hostname
 * (left out when it is not a valid DNS name: an operator then names the host with --name).
 */
export function serverNames (given: readonly string[], hostname: string): SubjectNames {
  const host = hostname.toLowerCase()
  const names = given.length > 0 ? given : ['localhost', '127.0.0.1', ...(isDnsName(host) ? [host] : [])]
  const out: SubjectNames = { dns: [], ips: [] }
  for (const raw of names) {
    const name = raw.trim().replace(/^\[(.*)\]$/, '$1')
    if (isIP(name) !== 0) {
      if (!out.ips.includes(name)) out.ips.push(name)
    } else if (isDnsName(name.toLowerCase())) {
      if (!out.dns.includes(name.toLowerCase())) out.dns.push(name.toLowerCase())
    } else {
      throw new CertsInputError(`--name '${raw}' is neither a DNS name (letters, digits, '-' and '.') nor an IP address; give the name or address browsers will use to reach the front`)
    }
  }
  return out
}

/** The client names, checked: each becomes clients/NAME.crt and NAME.key. */
export function clientNames (given: readonly string[]): string[] {
  const names = given.length > 0 ? given : DEFAULT_CLIENTS
  const seen = new Set<string>()
  for (const name of names) {
    checkClientName(name)
    if (seen.has(name)) throw new CertsInputError(`--client '${name}' is given twice; give each client once`)
    seen.add(name)
  }
  return [...seen]
}

export function checkClientName (name: string): string {
  if (!CLIENT_NAME.test(name)) {
    throw new CertsInputError(`client name '${name}' must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (64 at most): it names the client's files`)
  }
  return name
}

export function checkDays (days: number): number {
  if (!Number.isInteger(days) || days <= 0 || days > MAX_DAYS) {
    throw new CertsInputError(`--days takes a whole number from 1 to ${MAX_DAYS} (browsers refuse server certificates valid longer), got '${days}'; renew before they expire with a new certs init`)
  }
  return days
}
