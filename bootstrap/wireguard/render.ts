import { parseCidr } from './cidr.ts'
import type { InventoryHost } from './inventory.ts'

/** What DIR/state.json holds: the overlay as resolved, public keys only. */
export interface OverlayState {
  version: 1
  cidr: string
  port: number
  interface: string
  meshPort: number
  pskFile: string
  presharedKeys: boolean
  hosts: OverlayHost[]
}

export interface OverlayHost extends InventoryHost {
  address: string
  publicKey: string
}

export interface HostSecrets {
  privateKey: string
  /** the preshared key this host shares with each peer, by peer name (when the overlay uses them) */
  presharedKeys: ReadonlyMap<string, string>
}

export const KEEPALIVE_S = 25

/** The file name both hosts of a pair use for their preshared key: the same whichever way round. */
export function pairName (a: string, b: string): string {
  return a < b ? `${a}_${b}` : `${b}_${a}`
}

function prefixOf (state: OverlayState): number {
  const cidr = parseCidr(state.cidr)
  if (typeof cidr === 'string') throw new Error(`state.json: cidr ${state.cidr} ${cidr}`)
  return cidr.prefix
}

/** `DIR/<name>/<interface>.conf`, for `wg-quick up`: this host, then every other host as a peer. */
export function renderWgQuick (state: OverlayState, name: string, secrets: HostSecrets): string {
  const self = hostNamed(state, name)
  const lines = [
    `# ${state.interface} on ${name}, written by zp-node wireguard: change the set with add-host / remove-host, not by hand`,
    '[Interface]',
    `PrivateKey = ${secrets.privateKey}`,
    `Address = ${self.address}/${prefixOf(state)}`,
    `ListenPort = ${state.port}`
  ]
  for (const peer of state.hosts) {
    if (peer.name === name) continue
    const psk = secrets.presharedKeys.get(peer.name)
    if (state.presharedKeys && psk == null) throw new Error(`no preshared key for ${pairName(name, peer.name)}`)
    lines.push(
      '',
      '[Peer]',
      `# ${peer.name}`,
      `PublicKey = ${peer.publicKey}`,
      ...(psk == null ? [] : [`PresharedKey = ${psk}`]),
      `AllowedIPs = ${peer.address}/32`,
      `Endpoint = ${peer.endpoint}`,
      `PersistentKeepalive = ${KEEPALIVE_S}`
    )
  }
  return lines.join('\n') + '\n'
}

/** where the systemd unit's LoadCredential=psk:… puts the key */
export const SYSTEMD_PSK = '/run/credentials/zp-node.service/psk'

/**
 * `DIR/<name>/zp-node.env`, for systemd's EnvironmentFile= or `set -a; . zp-node.env`. The bootstrap list names
 * every bootstrap host, this one included (join skips its own address), so all hosts get the same list.
 */
export function renderEnv (state: OverlayState, name: string): string {
  const self = hostNamed(state, name)
  const mesh = `/ip4/${self.address}/tcp/${state.meshPort}`
  const bootstrap = state.hosts.filter((h) => h.role === 'bootstrap').map((h) => `${h.address}:${state.meshPort}`)
  return [
    `# zp-node on ${name} in the ${state.interface} overlay, written by zp-node wireguard. Start it with:`,
    '#   zp-node join $ZP_BOOTSTRAP --listen $ZP_LISTEN --announce $ZP_ANNOUNCE --psk $ZP_PSK_FILE --name $ZP_NAME',
    `ZP_NAME=${name}`,
    `ZP_LISTEN=${mesh}`,
    `ZP_ANNOUNCE=${mesh}`,
    `ZP_BOOTSTRAP="${bootstrap.join(' ')}"`,
    `ZP_PSK_FILE=${state.pskFile}`,
    `# the same for deploy/systemd/zp-node.service (zp-node install-service), which reads the key through its`,
    `# LoadCredential=psk:${state.pskFile} line (enable it):`,
    `ZP_COMMAND="join ${bootstrap.join(' ')}"`,
    `ZP_ARGS="--listen ${mesh} --announce ${mesh} --psk ${SYSTEMD_PSK} --name ${name}"`
  ].join('\n') + '\n'
}

export function hostNamed (state: OverlayState, name: string): OverlayHost {
  const host = state.hosts.find((h) => h.name === name)
  if (host == null) throw new Error(`no host named '${name}' in the overlay`)
  return host
}

