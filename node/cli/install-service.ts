import { constants } from 'node:fs'
import { access, mkdir, stat, writeFile } from 'node:fs/promises'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { UsageError } from './errors.ts'

// `zp-node install-service`: writes the systemd unit (deploy/systemd/zp-node.service is this template, rendered
// for /usr/local/bin/zp-node; a test keeps the two equal) and an environment file. It never runs systemctl.

/** How long the unit lets a node drain on SIGTERM; TimeoutStopSec leaves 30 s more before SIGKILL. */
export const UNIT_DRAIN_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_S = UNIT_DRAIN_TIMEOUT_MS / 1000 + 30

export const DEFAULT_ENV_FILE = '/etc/zp-node/zp-node.env'
export const DEFAULT_UNIT_DIR = '/etc/systemd/system'

/** The unit; `exec` is the command that runs zp-node (absolute paths: systemd has no PATH lookup for npm's Node). */
export function renderUnit (opts: { exec: string, envFile: string, user?: string }): string {
  // a named user must exist and own nothing else; without one systemd makes a throwaway user per start
  const user = opts.user != null
    ? `User=${opts.user}\nGroup=${opts.user}\n`
    : 'DynamicUser=yes\n'
  return `# ZP Mesh node. Written by 'zp-node install-service'; see deploy/systemd/README.md.
# What it runs (start or join, addresses, PSK) is in the environment file, so one unit serves every node.
[Unit]
Description=ZP Mesh node
Documentation=https://github.com/zp-mesh/zp-mesh/tree/main/deploy/systemd
Wants=network-online.target
# the WireGuard overlay, when the node listens on it; ordering only, harmless where wg-quick@zp0 is absent
After=network-online.target wg-quick@zp0.service

[Service]
Type=exec
${user}EnvironmentFile=${opts.envFile}
# ZP_COMMAND: 'start' (first node) or 'join ADDRESS...'; ZP_ARGS: any other zp-node flags (--listen, --announce, --psk)
ExecStart=${opts.exec} $ZP_COMMAND --data-dir \${STATE_DIRECTORY} --drain-timeout-ms ${UNIT_DRAIN_TIMEOUT_MS} $ZP_ARGS
StateDirectory=zp-node
StateDirectoryMode=0700
Environment=HOME=/var/lib/zp-node
Restart=on-failure
RestartSec=5s
# the first SIGTERM drains (running work finishes or is handed back); systemd waits longer than the drain
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=${STOP_TIMEOUT_S}s
LimitNOFILE=65536
# the mesh pre-shared key, readable by the service user whoever that is: pass --psk \${CREDENTIALS_DIRECTORY}/psk
# in ZP_ARGS, i.e. --psk /run/credentials/zp-node.service/psk
#LoadCredential=psk:/etc/zp-node/mesh.key

# Hardening. Not MemoryDenyWriteExecute: V8 and ONNX Runtime compile code at run time.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
# not ~@resources: ONNX Runtime pins its threads (sched_setaffinity)
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
UMask=0077
PrivateMounts=yes
RemoveIPC=yes
# GPUs and NPUs for ONNX Runtime: put these in a drop-in (systemctl edit zp-node) with PrivateDevices=no
#PrivateDevices=no
#DevicePolicy=closed
# NVIDIA (/dev/nvidia0..., nvidiactl; CUDA's unified memory), AMD ROCm (/dev/kfd), /dev/dri/* and /dev/accel/* (NPUs)
#DeviceAllow=char-nvidia rw
#DeviceAllow=char-nvidia-uvm rw
#DeviceAllow=/dev/kfd rw
#DeviceAllow=char-drm rw
#DeviceAllow=char-accel rw
#SupplementaryGroups=video render

[Install]
WantedBy=multi-user.target
`
}

export const ENV_EXAMPLE = `# zp-node's settings for the systemd unit (zp-node.service reads this file).
# The first node of a mesh:
ZP_COMMAND=start
# every other node joins through it (or several: join ADDR1 ADDR2):
#ZP_COMMAND=join /ip4/10.77.0.1/tcp/4170
# Other zp-node flags. On a WireGuard overlay listen and announce the overlay address; with a pre-shared key,
# enable LoadCredential=psk:... in the unit and pass its path:
ZP_ARGS=--listen /ip4/0.0.0.0/tcp/4170
#ZP_ARGS=--listen /ip4/10.77.0.2/tcp/4170 --announce /ip4/10.77.0.2/tcp/4170 --psk /run/credentials/zp-node.service/psk
`

/** The shipped unit's command, for deploy/systemd/zp-node.service (an npm global install's bin). */
export const SHIPPED_EXEC = '/usr/local/bin/zp-node'

async function executable (path: string, what: string, fix: string): Promise<void> {
  const info = await stat(path).catch(() => undefined)
  if (info == null) throw new UsageError(`${what} (${path}) does not exist; ${fix}`)
  if (!info.isFile()) throw new UsageError(`${what} (${path}) is not a file; ${fix}`)
  try {
    await access(path, constants.X_OK)
  } catch {
    throw new UsageError(`${what} (${path}) is not executable (chmod +x ${path}); ${fix}`)
  }
}

export interface InstallServiceOptions {
  unitDir: string
  envFile: string
  user?: string
  /** the zp-node script; default this one */
  bin?: string
  /** the Node that runs it; default this one */
  node?: string
}

/** Writes the unit and, where it is missing, the environment file; returns what it wrote. */
export async function installService (opts: InstallServiceOptions): Promise<{ unit: string, env: string | null }> {
  const bin = resolve(opts.bin ?? fileURLToPath(new URL('../bin/zp-node.mjs', import.meta.url)))
  const node = resolve(opts.node ?? process.execPath)
  if (opts.user != null && !/^[a-z_][a-z0-9_-]*$/.test(opts.user)) throw new UsageError(`--user '${opts.user}' is not a user name (lower-case letters, digits, _ and -)`)
  if (!isAbsolute(opts.envFile)) throw new UsageError(`--env '${opts.envFile}' must be an absolute path: systemd reads it from the unit`)
  // the unit would start nothing; systemd only says so at start, in the journal
  await executable(node, 'the Node.js the unit would run zp-node with', 'install Node 24 (or run install-service with the Node that should run the node)')
  await executable(bin, 'the zp-node the unit would run', 'install zp-mesh first (npm install -g zp-mesh) or pass --bin PATH of an installed zp-node.mjs')
  if (/\s/.test(node + bin)) throw new UsageError(`the unit's command '${node} ${bin}' has a space in it; install zp-mesh under a path without spaces`)
  await mkdir(opts.unitDir, { recursive: true })
  const unit = join(opts.unitDir, 'zp-node.service')
  await writeFile(unit, renderUnit({ exec: `${node} ${bin}`, envFile: opts.envFile, user: opts.user }))
  let env: string | null = null
  if (await stat(opts.envFile).catch(() => undefined) == null) {
    await mkdir(dirname(opts.envFile), { recursive: true })
    await writeFile(opts.envFile, ENV_EXAMPLE, { mode: 0o600 })
    env = opts.envFile
  }
  return { unit, env }
}

export function installServiceCommand (program: Command): void {
  program.command('install-service').description('write the systemd unit zp-node.service (and its environment file if missing); prints the systemctl commands, runs none')
    .option('--user <user>', 'run as this existing user (default: a dynamic user systemd makes per start)')
    .option('--env <file>', `environment file the unit reads (default ${DEFAULT_ENV_FILE})`)
    .option('--unit-dir <dir>', `where to write zp-node.service (default ${DEFAULT_UNIT_DIR})`)
    .option('--bin <path>', 'the zp-node.mjs the unit runs (default: this one)')
    .action(async (flags: { user?: string, env?: string, unitDir?: string, bin?: string }) => {
      const done = await installService({ unitDir: flags.unitDir ?? DEFAULT_UNIT_DIR, envFile: flags.env ?? DEFAULT_ENV_FILE, user: flags.user, bin: flags.bin })
      const lines = [`wrote ${done.unit}`]
      if (done.env != null) lines.push(`wrote ${done.env}: set ZP_COMMAND (start, or join ADDRESS) and ZP_ARGS there`)
      lines.push('then run: systemctl daemon-reload && systemctl enable --now zp-node', 'and check: zp-node health --data-dir /var/lib/zp-node; journalctl -u zp-node -f')
      process.stdout.write(lines.join('\n') + '\n')
    })
}
