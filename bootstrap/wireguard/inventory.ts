import { parse } from 'yaml'
import { z } from 'zod'
import { addressProblem, formatCidr, hostRange, intToIp, ipToInt, parseCidr, type Cidr } from './cidr.ts'

/**
 * The hosts of a WireGuard overlay, as people write them:
 *
 *   cidr: 10.77.0.0/24        # optional; --cidr overrides
 *   port: 51820               # WireGuard ListenPort on every host; --port overrides
 *   interface: zp0            # wg-quick interface name
 *   meshPort: 4170            # zp-node's mesh port on the overlay
 *   pskFile: /etc/zp-node/mesh.key   # where each host keeps the mesh key (ZP_PSK_FILE)
 *   hosts:
 *     - { name: lab-a, endpoint: 203.0.113.10:51820, role: bootstrap }
 *     - { name: gpu-1, endpoint: gpu-1.lab.example:51820, address: 10.77.0.20 }
 */

export const DEFAULT_CIDR = '10.77.0.0/24'
export const DEFAULT_PORT = 51820
export const DEFAULT_INTERFACE = 'zp0'
export const DEFAULT_MESH_PORT = 4170
export const DEFAULT_PSK_FILE = '/etc/zp-node/mesh.key'

/** An inventory, a host or a directory that cannot be used as given: bad input, the CLI exits 2. */
export class WireguardInputError extends Error {
  override name = 'WireguardInputError'
}

// host names become file names (keys/<name>.key, <name>/) and pair names (keys/psk/<a>_<b>.psk)
const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
// a DNS name, an IPv4 address or [IPv6], then a port: what wg-quick's Endpoint takes
const ENDPOINT = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/
// Linux interface names are at most 15 bytes; wg-quick takes these characters
const INTERFACE = /^[a-zA-Z0-9_=+.-]{1,15}$/

const Port = z.number().int().min(1).max(65535)

export const HostName = z.string().regex(HOST_NAME, 'names are 1-63 lower case letters, digits and -, as host names (they become file names)')
export const Endpoint = z.string().refine((e) => ENDPOINT.test(e) && Number(ENDPOINT.exec(e)![1]) >= 1 && Number(ENDPOINT.exec(e)![1]) <= 65535,
  'must be host:port where other hosts reach this one\'s WireGuard port, e.g. 203.0.113.10:51820 or [2001:db8::1]:51820')

const HostSchema = z.strictObject({
  name: HostName,
  endpoint: Endpoint,
  address: z.string().optional(),
  role: z.literal('bootstrap', { error: 'the only role is bootstrap (leave it out for other hosts)' }).optional()
})

const InventorySchema = z.strictObject({
  cidr: z.string().optional(),
  port: Port.optional(),
  interface: z.string().regex(INTERFACE, 'interface names are 1-15 letters, digits and _=+.-').optional(),
  meshPort: Port.optional(),
  pskFile: z.string().startsWith('/', 'must be an absolute path on the hosts').optional(),
  hosts: z.array(HostSchema).min(1, 'list at least one host')
})

export interface InventoryHost {
  name: string
  endpoint: string
  address?: string
  role?: 'bootstrap'
}

export interface Inventory {
  cidr: string
  port: number
  interface: string
  meshPort: number
  pskFile: string
  hosts: Array<InventoryHost & { address: string }>
}

/** `flags` (--cidr, --port) override what the file says. */
export function parseInventory (text: string, source: string, flags: { cidr?: string, port?: number } = {}): Inventory {
  let raw: unknown
  try {
    raw = parse(text)
  } catch (err) {
    throw new WireguardInputError(`${source}: not valid YAML: ${(err as Error).message}`)
  }
  const parsed = InventorySchema.safeParse(raw ?? {})
  if (!parsed.success) {
    const hosts = (raw as { hosts?: unknown } | null)?.hosts
    const problems = parsed.error.issues.map((issue) => `${where(issue.path, hosts)}: ${issue.message}`)
    throw new WireguardInputError(`${source}: invalid inventory:\n  ${problems.join('\n  ')}`)
  }
  const inv = parsed.data
  const cidrText = flags.cidr ?? inv.cidr ?? DEFAULT_CIDR
  const cidr = parseCidr(cidrText)
  if (typeof cidr === 'string') throw new WireguardInputError(`${source}: cidr ${cidrText} ${cidr}`)
  if (flags.port != null && !Port.safeParse(flags.port).success) throw new WireguardInputError(`--port ${flags.port} is not a UDP port (1-65535)`)
  const problems = hostProblems(inv.hosts, cidr)
  if (problems.length > 0) throw new WireguardInputError(`${source}: invalid inventory:\n  ${problems.join('\n  ')}`)
  return {
    cidr: formatCidr(cidr),
    port: flags.port ?? inv.port ?? DEFAULT_PORT,
    interface: inv.interface ?? DEFAULT_INTERFACE,
    meshPort: inv.meshPort ?? DEFAULT_MESH_PORT,
    pskFile: inv.pskFile ?? DEFAULT_PSK_FILE,
    hosts: assignAddresses(inv.hosts, cidr)
  }
}

/** `host 'gpu-1' (hosts[1]) address`, as people look it up in their file */
function where (path: ReadonlyArray<PropertyKey>, hosts: unknown): string {
  if (path[0] === 'hosts' && typeof path[1] === 'number') {
    const name = (Array.isArray(hosts) ? (hosts[path[1]] as { name?: unknown } | undefined)?.name : undefined)
    const field = path.slice(2).map(String).join('.')
    return `host ${typeof name === 'string' ? `'${name}' ` : ''}(hosts[${path[1]}])${field === '' ? '' : ` ${field}`}`
  }
  return path.length === 0 ? '(top level)' : path.map(String).join('.')
}

/** Duplicates and addresses the overlay cannot hold, each naming the host, the field and the fix. */
export function hostProblems (hosts: readonly InventoryHost[], cidr: Cidr): string[] {
  const problems: string[] = []
  const seen = { name: new Map<string, string>(), endpoint: new Map<string, string>(), address: new Map<string, string>() }
  for (const host of hosts) {
    for (const field of ['name', 'endpoint', 'address'] as const) {
      const value = host[field]?.toLowerCase()
      if (value == null) continue
      const other = seen[field].get(value)
      if (other != null) problems.push(`host '${host.name}' ${field}: ${host[field]} is also ${field === 'name' ? 'the name of another host' : `the ${field} of '${other}'`}; each host needs its own`)
      else seen[field].set(value, host.name)
    }
    if (host.address != null) {
      const problem = addressProblem(host.address, cidr)
      if (problem != null) problems.push(`host '${host.name}' address: ${problem}`)
    }
  }
  const { first, last } = hostRange(cidr)
  const room = last - first + 1
  if (hosts.length > room) problems.push(`cidr ${formatCidr(cidr)} has room for ${room} hosts, the inventory lists ${hosts.length}; use a larger overlay such as --cidr 10.77.0.0/24`)
  return problems
}

/**
 * Gives each host without an address the lowest free one, in inventory order, and makes the first host the
 * bootstrap when none is marked (a mesh needs one to join through).
 */
export function assignAddresses<H extends InventoryHost> (hosts: readonly H[], cidr: Cidr): Array<H & { address: string }> {
  const used = new Set(hosts.flatMap((h) => h.address == null ? [] : [ipToInt(h.address)]))
  const { first, last } = hostRange(cidr)
  let next = first
  const anyBootstrap = hosts.some((h) => h.role === 'bootstrap')
  return hosts.map((host, i) => {
    const role = host.role ?? (!anyBootstrap && i === 0 ? 'bootstrap' : undefined)
    if (host.address != null) return { ...host, address: host.address, ...(role == null ? {} : { role }) }
    while (used.has(next)) next++
    if (next > last) throw new WireguardInputError(`cidr ${formatCidr(cidr)} has no free address left for '${host.name}'; use a larger overlay`)
    used.add(next)
    return { ...host, address: intToIp(next), ...(role == null ? {} : { role }) }
  })
}
