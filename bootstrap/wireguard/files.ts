import { mkdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeAtomic, writeSecret } from '../../node/datadir.ts'
import { generatePskFile } from '../../node/psk.ts'
import { parseCidr } from './cidr.ts'
import { assignAddresses, hostProblems, WireguardInputError, type Inventory, type InventoryHost } from './inventory.ts'
import { generateKeyPair, generatePresharedKey, isWireguardKey, publicKeyOf } from './keys.ts'
import { pairName, renderEnv, renderWgQuick, type OverlayState } from './render.ts'

// The overlay directory: state.json (public), mesh.key and keys/ (secret, 0600), and one folder per host with
// what that host needs (its wg-quick config, 0600, and its zp-node environment file).

export function overlayPaths (dir: string) {
  return {
    state: join(dir, 'state.json'),
    meshKey: join(dir, 'mesh.key'),
    keys: join(dir, 'keys'),
    privateKey: (name: string) => join(dir, 'keys', `${name}.key`),
    publicKey: (name: string) => join(dir, 'keys', `${name}.pub`),
    psk: (a: string, b: string) => join(dir, 'keys', 'psk', `${pairName(a, b)}.psk`),
    host: (name: string) => join(dir, name),
    conf: (name: string, iface: string) => join(dir, name, `${iface}.conf`),
    env: (name: string) => join(dir, name, 'zp-node.env')
  }
}

const exists = async (path: string): Promise<boolean> => await stat(path).then(() => true, () => false)

/** `wireguard init`: keys, addresses and every host's files in a new DIR; refuses one that holds an overlay. */
export async function initOverlay (dir: string, inventory: Inventory, opts: { presharedKeys?: boolean } = {}): Promise<OverlayState> {
  const paths = overlayPaths(dir)
  for (const path of [paths.state, paths.keys, paths.meshKey]) {
    if (await exists(path)) {
      throw new WireguardInputError(`${dir} already holds an overlay (${path}); init would replace its keys. Extend it with 'zp-node wireguard add-host ${dir} NAME ENDPOINT', or give init a new --out folder`)
    }
  }
  await mkdir(join(paths.keys, 'psk'), { recursive: true, mode: 0o700 })
  await generatePskFile(paths.meshKey)
  const state: OverlayState = {
    version: 1,
    cidr: inventory.cidr,
    port: inventory.port,
    interface: inventory.interface,
    meshPort: inventory.meshPort,
    pskFile: inventory.pskFile,
    presharedKeys: opts.presharedKeys === true,
    hosts: []
  }
  for (const host of inventory.hosts) await addKeys(dir, state, host)
  await writeHosts(dir, state)
  return state
}

/** `wireguard add-host`: a new key and address for NAME, every host's files rewritten; no existing key changes. */
export async function addHost (dir: string, host: InventoryHost): Promise<OverlayState> {
  const state = await readState(dir)
  const cidr = parseCidr(state.cidr)
  if (typeof cidr === 'string') throw new WireguardInputError(`${overlayPaths(dir).state}: cidr ${state.cidr} ${cidr}`)
  const problems = hostProblems([...state.hosts, host], cidr)
  if (problems.length > 0) throw new WireguardInputError(`cannot add '${host.name}' to ${dir}:\n  ${problems.join('\n  ')}`)
  // the others keep their addresses: only the new host is given one
  const assigned = assignAddresses([...state.hosts, host], cidr).at(-1)!
  await addKeys(dir, state, assigned)
  await writeHosts(dir, state)
  return state
}

/** `wireguard remove-host`: NAME leaves every config and its keys are deleted, so no host accepts it again. */
export async function removeHost (dir: string, name: string): Promise<OverlayState> {
  const state = await readState(dir)
  const paths = overlayPaths(dir)
  const host = state.hosts.find((h) => h.name === name)
  if (host == null) throw new WireguardInputError(`${dir} has no host '${name}'; its hosts are ${state.hosts.map((h) => h.name).join(', ')}`)
  const rest = state.hosts.filter((h) => h.name !== name)
  if (rest.length === 0) throw new WireguardInputError(`'${name}' is the last host of ${dir}; remove the folder instead`)
  if (host.role === 'bootstrap' && !rest.some((h) => h.role === 'bootstrap')) {
    throw new WireguardInputError(`'${name}' is the only bootstrap host; add another first (zp-node wireguard add-host ${dir} NAME ENDPOINT --bootstrap)`)
  }
  state.hosts = rest
  await writeHosts(dir, state)
  await rm(paths.privateKey(name), { force: true })
  await rm(paths.publicKey(name), { force: true })
  for (const peer of rest) await rm(paths.psk(name, peer.name), { force: true })
  await rm(paths.host(name), { recursive: true, force: true })
  return state
}

export async function readState (dir: string): Promise<OverlayState> {
  const path = overlayPaths(dir).state
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new WireguardInputError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is ${dir} a folder made by 'zp-node wireguard init'?`)
  }
  try {
    const state = JSON.parse(text) as OverlayState
    if (state.version !== 1 || !Array.isArray(state.hosts)) throw new Error('not a version 1 overlay state')
    return state
  } catch (err) {
    throw new WireguardInputError(`${path} is not an overlay state written by zp-node wireguard: ${(err as Error).message}`)
  }
}

/** A new key pair for `host` (and preshared keys with every host before it), recorded in `state`. */
async function addKeys (dir: string, state: OverlayState, host: InventoryHost & { address: string }): Promise<void> {
  const paths = overlayPaths(dir)
  const keys = generateKeyPair()
  await writeSecret(paths.privateKey(host.name), keys.privateKey + '\n')
  await writeSecret(paths.publicKey(host.name), keys.publicKey + '\n')
  if (state.presharedKeys) {
    for (const peer of state.hosts) await writeSecret(paths.psk(host.name, peer.name), generatePresharedKey() + '\n')
  }
  state.hosts.push({ name: host.name, endpoint: host.endpoint, address: host.address, ...(host.role == null ? {} : { role: host.role }), publicKey: keys.publicKey })
}

async function readKey (path: string, owner: string): Promise<string> {
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch (err) {
    throw new WireguardInputError(`cannot read the key of '${owner}' (${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); restore it from a backup, or give '${owner}' a new one with remove-host then add-host`)
  }
  if (!isWireguardKey(text)) throw new WireguardInputError(`${path} is not a WireGuard key (44 base64 characters); restore it from a backup, or remove-host then add-host '${owner}'`)
  return text
}

/** Renders every host's files from the keys on disk; state.json last, so it never names files not written. */
async function writeHosts (dir: string, state: OverlayState): Promise<void> {
  const paths = overlayPaths(dir)
  for (const host of state.hosts) {
    const privateKey = await readKey(paths.privateKey(host.name), host.name)
    if (publicKeyOf(privateKey) !== host.publicKey) {
      throw new WireguardInputError(`${paths.privateKey(host.name)} does not match the public key of '${host.name}' in ${paths.state}; restore the right key file`)
    }
    const presharedKeys = new Map<string, string>()
    if (state.presharedKeys) {
      for (const peer of state.hosts) {
        if (peer.name !== host.name) presharedKeys.set(peer.name, await readKey(paths.psk(host.name, peer.name), pairName(host.name, peer.name)))
      }
    }
    await mkdir(paths.host(host.name), { recursive: true, mode: 0o700 })
    await writeSecret(paths.conf(host.name, state.interface), renderWgQuick(state, host.name, { privateKey, presharedKeys }))
    await writeAtomic(paths.env(host.name), renderEnv(state, host.name))
  }
  await writeAtomic(paths.state, JSON.stringify(state, null, 2) + '\n')
}
