import { statSync } from 'node:fs'
import { resolve } from 'node:path'
import { Command, Option } from 'commander'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { parseBootstrap } from '../../bootstrap/address.ts'
import type { Labels } from '../../protocols/bridge/schema.ts'
import { parseApiAddress } from '../api/server.ts'
import { parseMetricsAddress } from '../metrics/listener.ts'
import { dataPaths, removeNodeInfoSync, resolveDataDir } from '../datadir.ts'
import { loadOrCreateIdentity, peerIdOf } from '../identity.ts'
import { createLogger } from '../logger.ts'
import { DEFAULT_API, DEFAULT_LISTEN, VERSION, ZpNode, type NodeOptions } from '../node.ts'
import { formatProbeTable, probeCapabilities } from '../probe/index.ts'
import { generatePskFile, loadPsk, loadPskEnv } from '../psk.ts'
import { certsCommands } from './certs.ts'
import { runDemo } from './demo.ts'
import { UsageError, collect, durationFlag, exitWithError, positiveInt } from './errors.ts'
import { healthCommand } from './health.ts'
import { installServiceCommand } from './install-service.ts'
import { labelFlag } from './label-flags.ts'
import { checkLivenessFlags } from './liveness-flags.ts'
import { nodeStatusCommands } from './node-status.ts'
import { wireguardCommands } from './wireguard.ts'

interface NodeFlags {
  listen?: string[]
  announce?: string[]
  dataDir?: string
  api: string | false
  metrics?: string
  name?: string
  psk?: string
  pskEnv?: string
  mdns?: boolean
  trust?: string[]
  trustBootstrap: boolean
  trustMesh?: boolean
  probePlugin?: string[]
  onnxProbe: boolean
  slots?: number
  label?: Labels
  execConfig?: string
  dataRoot?: string[]
  blobRetention?: number
  resume: boolean
  heartbeatMs?: number
  suspectAfterMs?: number
  deadAfterMs?: number
  drainTimeoutMs?: number
  exitWhenIdle?: number
  signalExitCode?: number
  logLevel?: string
  logFile?: string
}

function nodeOptions (cmd: Command): Command {
  return cmd
    .option('--listen <multiaddr>', `address to listen on, repeatable (default ${DEFAULT_LISTEN})`, collect)
    .option('--announce <multiaddr>', 'address to tell peers instead (NAT, WireGuard overlay), repeatable', collect)
    .option('--data-dir <dir>', 'identity, database, logs and node.json (default $ZP_DATA_DIR or ~/.zp)')
    .option('--api <host:port>', `control API on loopback; port 0 picks a free one (default ${DEFAULT_API.host}:${DEFAULT_API.port})`)
    .option('--no-api', 'run without the control API')
    .option('--metrics <host:port>', 'also serve GET /metrics without the API token, for Prometheus; bind it to loopback or the overlay address, never a public one (port 0 picks a free one; node.json says which)')
    .option('--name <name>', 'name shown in peer tables and logs (default: host name)')
    .option('--psk <file>', 'pre-shared key file: only nodes with the same key can connect (zp-node psk generate)')
    .option('--psk-env <var>', 'the pre-shared key\'s text in this environment variable instead of a file (a Kubernetes Secret)')
    .option('--mdns', 'find the other nodes on this LAN by mDNS (only those with the same --psk): no bootstrap address needed')
    .option('--trust <peerId>', 'peer whose coordinators may use this node, repeatable', collect)
    .option('--no-trust-bootstrap', 'do not trust the peer this node joined through')
    .option('--trust-mesh', 'trust every peer of the mesh, so a campaign submitted on any node may use this one (use with --psk)')
    .option('--probe-plugin <file>', 'ES module exporting probe() for custom accelerators, repeatable', collect)
    .option('--no-onnx-probe', 'skip probing ONNX Runtime execution providers')
    .option('--slots <n>', 'work slots offered (default: CPU cores)', positiveInt('--slots'))
    .option('--label <key=value>', 'a label campaigns can require (requires.labels), e.g. bridge=slurm; repeatable', labelFlag)
    .option('--exec-config <file>', 'YAML of the command templates exec campaigns may run here (advertised as exec.<name>)')
    .option('--data-root <dir>', 'folder whose files campaigns submitted here may name, besides the campaign file\'s own folder; repeatable', collect)
    .option('--blob-retention <duration>', 'keep a blob this long once nothing uses it (its campaign ended): 30m, 2h, 7d, or 0 for at once (default 24h)', durationFlag('--blob-retention'))
    .option('--no-resume', 'do not pick up the campaigns this node was coordinating when it stopped (zp resume ID does it later)')
    .option('--heartbeat-ms <ms>', 'heartbeat interval (default 1000)', positiveInt('--heartbeat-ms'))
    .option('--suspect-after-ms <ms>', 'silence before a peer is SUSPECT (default 4000)', positiveInt('--suspect-after-ms'))
    .option('--dead-after-ms <ms>', 'silence before a peer is DEAD (default 8000)', positiveInt('--dead-after-ms'))
    .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long running work may take before the node stops anyway (default 60000)', positiveInt('--drain-timeout-ms'))
    .option('--exit-when-idle <duration>', 'drain and exit 0 once the node has had no shard, no unfinished campaign and no replica of one for this long: 30s, 2m, or ms', durationFlag('--exit-when-idle'))
    .option('--signal-exit-code <code>', 'exit code after a drain that SIGTERM/SIGINT started (default 0); Kubernetes Job pods use 143, so a deleted or evicted pod is replaced rather than its index counted complete', positiveInt('--signal-exit-code'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
    .option('--log-file <file>', 'JSON log file (default <data-dir>/logs/node.log)')
}

/** --data-root folders, each checked to be one, as absolute paths */
function dataRoots (dirs: string[] | undefined): string[] | undefined {
  return dirs?.map((dir) => {
    if (statSync(dir, { throwIfNoEntry: false })?.isDirectory() !== true) throw new UsageError(`--data-root '${dir}' is not a folder`)
    return resolve(dir)
  })
}

/** Checks every flag, and reads the key file, before anything is written to the data dir. */
async function toNodeOptions (flags: NodeFlags, bootstrap: string[]): Promise<NodeOptions> {
  const listen = flags.listen ?? [DEFAULT_LISTEN]
  for (const [flag, addrs] of [['--listen', listen], ['--announce', flags.announce ?? []]] as const) {
    for (const a of addrs) {
      try {
        multiaddr(a)
      } catch (err) {
        throw new UsageError(`${flag} '${a}' is not a multiaddr (${(err as Error).message}); e.g. /ip4/0.0.0.0/tcp/4170`)
      }
    }
  }
  for (const p of flags.trust ?? []) {
    try {
      peerIdFromString(p)
    } catch {
      throw new UsageError(`--trust '${p}' is not a peer ID; 'zp-node id' on that machine prints it`)
    }
  }
  const timings = {
    ...(flags.heartbeatMs != null ? { heartbeatMs: flags.heartbeatMs } : {}),
    ...(flags.suspectAfterMs != null ? { suspectAfterMs: flags.suspectAfterMs } : {}),
    ...(flags.deadAfterMs != null ? { deadAfterMs: flags.deadAfterMs } : {})
  }
  checkLivenessFlags(timings)
  const bootstrapAddrs = bootstrap.map(parseBootstrap)
  const api = flags.api === false ? false : flags.api != null ? parseApiAddress(flags.api) : DEFAULT_API
  if (flags.psk != null && flags.pskEnv != null) throw new UsageError('give the pre-shared key once: --psk FILE or --psk-env VAR, not both')
  const psk = flags.psk != null ? await loadPsk(flags.psk) : flags.pskEnv != null ? loadPskEnv(flags.pskEnv) : undefined
  const dataDir = resolveDataDir(flags.dataDir)
  return {
    dataDir,
    name: flags.name,
    listen,
    announce: flags.announce,
    bootstrap: bootstrapAddrs,
    psk,
    // bridges hand the key file's path to the nodes they start
    ...(flags.psk != null ? { pskFile: resolve(flags.psk) } : {}),
    trust: flags.trust,
    trustBootstrap: flags.trustBootstrap,
    trustMesh: flags.trustMesh,
    api,
    ...(flags.metrics != null ? { metrics: parseMetricsAddress(flags.metrics) } : {}),
    mdns: flags.mdns,
    probe: { plugins: flags.probePlugin, onnx: flags.onnxProbe },
    slots: flags.slots,
    labels: flags.label,
    execConfig: flags.execConfig,
    dataRoots: dataRoots(flags.dataRoot),
    blobRetentionMs: flags.blobRetention,
    resume: flags.resume,
    timings,
    drainTimeoutMs: flags.drainTimeoutMs,
    exitWhenIdleMs: flags.exitWhenIdle,
    logger: createLogger({ file: flags.logFile ?? dataPaths(dataDir).log, level: flags.logLevel as 'info' | undefined }),
    logPath: flags.logFile
  }
}

/**
 * Runs a node in the foreground until a signal: the first SIGINT/SIGTERM
 * drains (peers see DRAINING, running work finishes or is handed back), a
 * second one stops at once.
 */
async function runNode (opts: NodeOptions, signalExitCode = 0): Promise<void> {
  const node = await ZpNode.start(opts)
  let signals = 0
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++
    if (signals === 1) {
      node.log.info({ signal: sig }, `${sig}: draining, then stopping (send it again to stop at once)`)
      void node.drain(`received ${sig}`)
      return
    }
    node.log.warn({ signal: sig }, `${sig} again: stopping now`)
    removeNodeInfoSync(node.dataDir)
    node.log.flush()
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  await node.stopped
  node.log.flush()
  // a drain a signal started is told apart from an idle exit where asked (a Kubernetes Job replaces the pod)
  process.exitCode = signals > 0 ? signalExitCode : 0
  // libp2p can leave sockets half-closed for a while; the node is done
  setTimeout(() => process.exit(), 100).unref()
}

export function buildProgram (): Command {
  const program = new Command('zp-node')
    .description('ZP Mesh node: joins the encrypted mesh, advertises this machine\'s accelerators, runs work')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(zp-node --help lists the commands)')

  nodeOptions(program.command('start').description('run a node in the foreground (first node of a mesh, or rejoin known peers)'))
    .action(async (flags: NodeFlags) => { await runNode(await toNodeOptions(flags, []), flags.signalExitCode) })

  nodeOptions(program.command('join').argument('[bootstrap...]', 'multiaddr or host:port of a node already in the mesh (optional with --mdns)')
    .description('run a node that joins the mesh through a bootstrap peer (retries until it answers), or finds it on the LAN with --mdns'))
    .hook('preAction', (cmd) => {
      if (cmd.args.length === 0 && cmd.opts<NodeFlags>().mdns !== true) {
        throw new UsageError('zp-node join needs the address of a node already in the mesh (e.g. zp-node join 10.0.0.5:4170), or --mdns to find one on this LAN')
      }
    })
    .action(async (bootstrap: string[], flags: NodeFlags) => { await runNode(await toNodeOptions(flags, bootstrap), flags.signalExitCode) })

  program.command('id').description('print this node\'s peer ID (creating the identity on first use)')
    .option('--data-dir <dir>', 'data dir (default $ZP_DATA_DIR or ~/.zp)')
    .action(async (flags: { dataDir?: string }) => {
      const { key } = await loadOrCreateIdentity(resolveDataDir(flags.dataDir))
      process.stdout.write(peerIdOf(key) + '\n')
    })

  nodeStatusCommands(program)
  wireguardCommands(program)
  certsCommands(program)
  healthCommand(program)
  installServiceCommand(program)

  program.command('psk').description('pre-shared keys for private meshes')
    .command('generate').argument('<file>', 'where to write the key (mode 0600); copy it to every node')
    .option('--force', 'replace an existing file')
    .action(async (file: string, flags: { force?: boolean }) => {
      const psk = await generatePskFile(file, { force: flags.force })
      process.stdout.write(`wrote ${file} (fingerprint ${psk.fingerprint}); start every node with --psk ${file}\n`)
    })

  program.command('probe').description('probe this machine\'s accelerators as a node would advertise them')
    .option('--json', 'print the report as JSON')
    .option('--probe-plugin <file>', 'ES module exporting probe(), repeatable', collect)
    .option('--no-onnx-probe', 'skip probing ONNX Runtime execution providers')
    .action(async (flags: { json?: boolean, probePlugin?: string[], onnxProbe: boolean }) => {
      const report = await probeCapabilities({ plugins: flags.probePlugin, onnx: flags.onnxProbe, logger: createLogger({ console: 'none', level: 'silent' }) })
      process.stdout.write(flags.json === true ? JSON.stringify(report, null, 2) + '\n' : formatProbeTable(report).join('\n') + '\n')
    })

  program.command('run-shard').description('run one shard of a detached campaign (each Slurm array task of zp submit --on slurm) and exit: 0 done, 1 failed (retry it), 3 failed for good, 143 on SIGTERM')
    .requiredOption('--manifest <dir>', 'the campaign\'s detached folder (holding manifest.json), on a file system shared with the coordinator')
    .requiredOption('--index <n>', 'the shard to run')
    .option('--exec-config <file>', 'YAML of the command templates exec campaigns may run (the format of --exec-config of a node)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'silent']))
    .action(async (flags: import('./run-shard.ts').RunShardFlags) => {
      // loaded only for this command: no other one needs the runners
      const { runShardMain } = await import('./run-shard.ts')
      await runShardMain(flags)
    })

  program.command('demo').description('start a local 3-node mesh, show it, and stop it')
    .option('--keep', 'keep the demo\'s data dirs and logs')
    .action(async (flags: { keep?: boolean }) => { await runDemo({ keep: flags.keep === true }) })

  return program
}

export async function main (argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv)
  } catch (err) {
    exitWithError('zp-node', err)
  }
}
