import { access, constants, mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { isAbsolute, join } from 'node:path'
import type { Logger } from 'pino'
import type { PeerView } from '../actors/membership/membership.ts'
import { describeError } from '../actors/runtime/errors.ts'
import { daskEngine } from '../bootstrap/dask/bridge.ts'
import { k8sEngine } from '../bootstrap/k8s/bridge.ts'
import { rayEngine } from '../bootstrap/ray/bridge.ts'
import { BridgeRegistry } from '../bootstrap/bridge/registry.ts'
import { ZP_NODE_BIN } from '../bootstrap/local.ts'
import { SlurmClient } from '../bootstrap/slurm/commands.ts'
import { slurmEngine } from '../bootstrap/slurm/bridge.ts'
import type { Detached } from '../protocols/bridge/schema.ts'
import { CampaignFileError } from './campaign/load.ts'
import type { Storage } from './storage.ts'

/**
 * The zp-node command bridges start elsewhere: this Node (≥ 22; the
 * machine's `node` on PATH may be older) and this checkout's zp-node.mjs, or
 * ZP_NODE_ARGV (a JSON array) where the cluster has them at other paths.
 */
export function nodeArgv (env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env.ZP_NODE_ARGV
  if (override != null && override !== '') {
    let argv: unknown
    try {
      argv = JSON.parse(override)
    } catch {
      argv = undefined
    }
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every(a => typeof a === 'string')) {
      throw new Error(`ZP_NODE_ARGV must be a JSON array of strings, e.g. ["/opt/node24/bin/node", "/opt/zp/node/bin/zp-node.mjs"]; got ${override}`)
    }
    return argv
  }
  return [process.execPath, ZP_NODE_BIN]
}

export interface NodeBridgesInit {
  storage: Storage
  log: Logger
  dataDir: string
  peers: () => Promise<PeerView[]>
  announced: () => string[]
  pskFile?: string
  /** the key's text when the node read it from --psk-env */
  pskText?: string
}

/** A node's bridges: the allocation registry (zp bridge …), and what detached campaigns need (Slurm, the shared dir). */
export class NodeBridges {
  readonly registry: BridgeRegistry
  readonly argv: string[]
  readonly #log: Logger
  readonly #dataDir: string

  constructor (init: NodeBridgesInit) {
    this.argv = nodeArgv()
    this.#log = init.log
    this.#dataDir = init.dataDir
    const workDir = join(init.dataDir, 'bridges')
    this.registry = new BridgeRegistry({
      storage: init.storage,
      log: init.log,
      engines: { slurm: slurmEngine({ client: () => this.slurm(), workDir }), dask: daskEngine(), ray: rayEngine(), k8s: k8sEngine() },
      peers: init.peers,
      nodeArgv: this.argv,
      announced: init.announced,
      ...(init.pskFile != null ? { pskFile: init.pskFile } : {}),
      ...(init.pskText != null ? { pskText: init.pskText } : {})
    })
  }

  slurm (): SlurmClient {
    return new SlurmClient({ log: this.#log.child({ component: 'slurm' }) })
  }

  /** where detached campaigns write their manifests when `--shared-dir` is not given */
  get defaultSharedDir (): string {
    return process.env.ZP_SHARED_DIR ?? join(this.#dataDir, 'detached')
  }

  /**
   * Before a detached campaign is accepted: its shared dir is writable and
   * Slurm answers (its commands, the partition). Each failure names the fix;
   * nothing is stored.
   */
  async checkDetached (d: Detached, signal: AbortSignal): Promise<void> {
    if (!isAbsolute(d.sharedDir)) throw new CampaignFileError(`--shared-dir ${d.sharedDir} must be an absolute path (the compute nodes read it as it is)`)
    const probe = join(d.sharedDir, `.zp-write-check-${process.pid}`)
    try {
      // not mkdir -p: Node's recursive mkdir never returns for some paths (under /proc, say)
      if (await stat(d.sharedDir).then(s => !s.isDirectory(), () => true)) await mkdir(d.sharedDir)
      await access(d.sharedDir, constants.W_OK)
      await writeFile(probe, 'ok')
      await rm(probe, { force: true })
    } catch (err) {
      throw new CampaignFileError(`the shared dir ${d.sharedDir} is not writable (${(err as NodeJS.ErrnoException).code ?? describeError(err)}): pass --shared-dir DIR on a file system this node and the compute nodes can both write`)
    }
    const slurm = this.slurm()
    try {
      await slurm.check(signal)
      // sinfo asks the controller: a cluster that cannot be reached fails here, not after the campaign was accepted
      const parts = await slurm.partitions(signal)
      if (d.partition != null) {
        if (!parts.includes(d.partition)) throw new CampaignFileError(`Slurm has no partition '${d.partition}' (it has: ${parts.join(', ') || 'none'}); pick one of those`)
      }
    } catch (err) {
      if (err instanceof CampaignFileError) throw err
      throw new CampaignFileError(`cannot run this campaign on Slurm: ${describeError(err)}`)
    }
  }
}
