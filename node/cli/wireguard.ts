import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { addHost, initOverlay, overlayPaths, removeHost } from '../../bootstrap/wireguard/files.ts'
import { Endpoint, HostName, parseInventory, WireguardInputError } from '../../bootstrap/wireguard/inventory.ts'
import type { OverlayState } from '../../bootstrap/wireguard/render.ts'
import { positiveInt, UsageError } from './errors.ts'

// `zp-node wireguard …`: the WireGuard overlay a mesh across machines runs in. Private keys go to files only.
// The planner's WireguardInputError is bad input: exit 2 (node/cli/errors.ts).

function checked (field: string, schema: typeof HostName, value: string): string {
  const result = schema.safeParse(value)
  if (!result.success) throw new UsageError(`${field} '${value}' ${result.error.issues[0]?.message ?? 'is invalid'}`)
  return result.data
}

function summary (dir: string, state: OverlayState): string {
  const paths = overlayPaths(dir)
  const rows = state.hosts.map((h) => `  ${h.name.padEnd(16)} ${h.address.padEnd(15)} ${h.role === 'bootstrap' ? 'bootstrap ' : '          '} ${h.publicKey}  ${paths.host(h.name)}/`)
  return [
    `overlay ${state.cidr} (${state.interface}, WireGuard port ${state.port}, mesh port ${state.meshPort}) in ${dir}:`,
    ...rows,
    `copy each host's folder to that host and ${paths.meshKey} to ${state.pskFile} on every host; private keys stay in files (mode 0600)`
  ].join('\n') + '\n'
}

export function wireguardCommands (program: Command): void {
  const wg = program.command('wireguard').description('generate the WireGuard overlay (keys, wg-quick configs, zp-node environment files) a mesh across machines runs in')

  wg.command('init').description('keys, overlay addresses and every host\'s files from an inventory, in a new folder')
    .requiredOption('--inventory <file>', 'YAML: hosts: [{ name, endpoint: host:port, address?, role?: bootstrap }], optional cidr, port, interface, meshPort, pskFile')
    .requiredOption('--out <dir>', 'folder to write (refused if it already holds an overlay)')
    .option('--cidr <cidr>', 'overlay network (default: the inventory\'s, else 10.77.0.0/24)')
    .option('--port <port>', 'WireGuard ListenPort on every host (default: the inventory\'s, else 51820)', positiveInt('--port'))
    .option('--preshared-keys', 'add a preshared key per pair of hosts (post-quantum hedge)')
    .action(async (flags: { inventory: string, out: string, cidr?: string, port?: number, presharedKeys?: boolean }) => {
      let text: string
      try {
        text = await readFile(flags.inventory, 'utf8')
      } catch (err) {
        throw new WireguardInputError(`cannot read the inventory ${flags.inventory}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
      const inventory = parseInventory(text, flags.inventory, { cidr: flags.cidr, port: flags.port })
      const state = await initOverlay(flags.out, inventory, { presharedKeys: flags.presharedKeys })
      process.stdout.write(summary(flags.out, state))
    })

  wg.command('add-host').description('add a host to an overlay: a new key and address, every host\'s files rewritten, no existing key changed')
    .argument('<dir>', 'the folder wireguard init wrote').argument('<name>', 'the new host\'s name').argument('<endpoint>', 'host:port where the others reach its WireGuard port')
    .option('--address <ip>', 'its overlay address (default: the lowest free one)')
    .option('--bootstrap', 'make it a bootstrap host (every host\'s ZP_BOOTSTRAP then names it)')
    .action(async (dir: string, name: string, endpoint: string, flags: { address?: string, bootstrap?: boolean }) => {
      const host = {
        name: checked('NAME', HostName, name),
        endpoint: checked('ENDPOINT', Endpoint, endpoint),
        ...(flags.address == null ? {} : { address: flags.address }),
        ...(flags.bootstrap === true ? { role: 'bootstrap' as const } : {})
      }
      const state = await addHost(dir, host)
      process.stdout.write(`added ${name}; bring the change to every host (wg-quick down/up, or wg syncconf)\n` + summary(dir, state))
    })

  wg.command('remove-host').description('revoke a host: it leaves every host\'s config and its keys are deleted')
    .argument('<dir>', 'the folder wireguard init wrote').argument('<name>', 'the host to remove')
    .action(async (dir: string, name: string) => {
      const state = await removeHost(dir, name)
      process.stdout.write(`removed ${name}; it is revoked once every remaining host loads its new config\n` + summary(dir, state))
    })
}
