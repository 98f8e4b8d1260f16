import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { copyFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'

/*
 * A lab of machines made of network namespaces, for the tests of the WireGuard overlay, LAN discovery and
 * partitions: host i is namespace `${prefix}h${i}` with underlay address 10.200.0.i/24 on `${prefix}u${i}`,
 * a veth whose other end sits on one bridge in namespace `${prefix}sw` (a LAN switch: multicast crosses it).
 * Partitions are nft drop rules on a host's underlay (the link stays up, packets vanish, as when a cable is
 * cut somewhere between machines). Needs root, iproute2 and, for cuts, nftables.
 *
 * Names are machine-wide (namespaces, and wireguard-go's control sockets in /var/run/wireguard): give each
 * test file its own short prefix with the pid in it. Interface names are at most 15 characters.
 */

export interface LabHost {
  /** 1-based */
  index: number
  ns: string
  underlay: string
  /** runs a command on this host: prefix for spawn/execFile */
  wrap: string[]
}

function run (file: string, args: string[], env?: NodeJS.ProcessEnv): string {
  return execFileSync(file, args, { stdio: 'pipe', env: env == null ? process.env : { ...process.env, ...env } }).toString()
}

function errorText (err: unknown): string {
  const e = err as NodeJS.ErrnoException & { stderr?: Buffer }
  if (e.code === 'ENOENT') return `${e.path ?? 'a command'} is not installed`
  return e.stderr?.toString().trim() || e.message.split('\n')[0]!
}

/** The Debian packages whose commands are missing here, of those named (command → package). */
export function missingPackages (needs: Record<string, string>): string[] {
  const missing = new Set<string>()
  for (const [command, pkg] of Object.entries(needs)) {
    try {
      run('sh', ['-c', `command -v ${command}`])
    } catch {
      missing.add(pkg)
    }
  }
  return [...missing]
}

export class NetnsLab {
  readonly prefix: string
  readonly hosts: LabHost[]
  readonly #switch: string
  readonly #interfaces: string[] = []

  private constructor (prefix: string, n: number) {
    this.prefix = prefix
    this.#switch = `${prefix}sw`
    this.hosts = Array.from({ length: n }, (_, k) => {
      const ns = `${prefix}h${k + 1}`
      return { index: k + 1, ns, underlay: `10.200.0.${k + 1}`, wrap: ['ip', 'netns', 'exec', ns] }
    })
  }

  /**
   * Builds the lab, or says why it cannot be built here (not root, a missing command): tests skip with it.
   * `defaultRoute` routes everything (multicast too) out of the underlay, like a LAN's only interface.
   */
  static create (prefix: string, n: number, opts: { defaultRoute?: boolean } = {}): NetnsLab | string {
    if (process.getuid?.() !== 0) return 'network namespaces need root'
    const lab = new NetnsLab(prefix, n)
    lab.remove() // what a killed earlier run with this prefix left
    try {
      run('ip', ['netns', 'add', lab.#switch])
      run('ip', ['-n', lab.#switch, 'link', 'add', `${prefix}br`, 'type', 'bridge'])
      run('ip', ['-n', lab.#switch, 'link', 'set', `${prefix}br`, 'up'])
      for (const h of lab.hosts) {
        const dev = `${prefix}u${h.index}`
        const port = `${prefix}p${h.index}`
        run('ip', ['netns', 'add', h.ns])
        run('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up'])
        run('ip', ['link', 'add', dev, 'netns', h.ns, 'type', 'veth', 'peer', 'name', port, 'netns', lab.#switch])
        run('ip', ['-n', lab.#switch, 'link', 'set', port, 'master', `${prefix}br`])
        run('ip', ['-n', lab.#switch, 'link', 'set', port, 'up'])
        run('ip', ['-n', h.ns, 'addr', 'add', `${h.underlay}/24`, 'dev', dev])
        run('ip', ['-n', h.ns, 'link', 'set', dev, 'up'])
        if (opts.defaultRoute === true) run('ip', ['-n', h.ns, 'route', 'add', 'default', 'dev', dev])
      }
      return lab
    } catch (err) {
      lab.remove()
      return errorText(err)
    }
  }

  host (index: number): LabHost {
    const h = this.hosts[index - 1]
    if (h == null) throw new Error(`the lab has no host ${index}`)
    return h
  }

  /**
   * `wg-quick up` of a generated config on host i, with userspace wireguard-go (no kernel module here). The
   * config is copied to `<iface>.conf` in `dir` first: wg-quick names the interface after the file, and
   * wireguard-go's control sockets are shared by all namespaces, so each host needs its own interface name.
   */
  async wireguardUp (index: number, conf: string, iface: string, dir: string): Promise<void> {
    const copy = join(dir, `${iface}.conf`)
    await copyFile(conf, copy)
    await chmod(copy, 0o600)
    this.#interfaces.push(iface)
    run('ip', ['netns', 'exec', this.host(index).ns, 'wg-quick', 'up', copy], { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' })
  }

  /** `wg show <iface> latest-handshakes` on host i: peer public key → epoch seconds (0: never). */
  handshakes (index: number, iface: string): Map<string, number> {
    const out = run('ip', ['netns', 'exec', this.host(index).ns, 'wg', 'show', iface, 'latest-handshakes'])
    return new Map(out.trim().split('\n').filter(l => l !== '').map(l => {
      const [key, t] = l.split('\t')
      return [key!, Number(t)]
    }))
  }

  /** Host i loses its underlay: every packet in or out of it is dropped (nft), the link stays up. */
  cut (index: number): void {
    const h = this.host(index)
    const dev = `${this.prefix}u${index}`
    this.heal(index)
    execFileSync('ip', ['netns', 'exec', h.ns, 'nft', '-f', '-'], {
      stdio: 'pipe',
      input: `table inet zpcut {
  chain in { type filter hook input priority -10; policy accept; iifname "${dev}" drop; }
  chain out { type filter hook output priority -10; policy accept; oifname "${dev}" drop; }
}
`
    })
  }

  heal (index: number): void {
    try {
      run('ip', ['netns', 'exec', this.host(index).ns, 'nft', 'delete', 'table', 'inet', 'zpcut'])
    } catch {}
  }

  /** Kills what runs in the hosts (wireguard-go daemons, nodes), deletes the namespaces and their links. */
  remove (): void {
    for (const ns of [...this.hosts.map(h => h.ns), this.#switch]) {
      try {
        const pids = run('ip', ['netns', 'pids', ns]).trim().split('\n').filter(p => p !== '')
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL')
          } catch {}
        }
      } catch {}
      try {
        run('ip', ['netns', 'delete', ns])
      } catch {}
    }
    for (const iface of this.#interfaces) {
      rmSync(`/var/run/wireguard/${iface}.sock`, { force: true })
    }
  }
}
