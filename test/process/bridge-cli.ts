import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { LocalNode } from '../../bootstrap/local.ts'
import type { Allocation } from '../../protocols/bridge/schema.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { runCli, type ProcessMesh } from './harness.ts'

/** What every bridge test does through the CLI of its coordinator node. */
export interface BridgeCli {
  /** the squares campaign (3 iterations a shard) written to the test's folder, with `extra` fields */
  campaignFile: (name: string, extra: Record<string, unknown>) => Promise<string>
  zp: (args: string[], timeoutMs?: number) => Promise<{ code: number, stdout: string, stderr: string }>
  status: (id: string) => Promise<CampaignStatus>
  /** `zp bridge list --json` */
  allocations: () => Promise<Allocation[]>
  /** the coordinator's peers labelled zp.bridge=<id> */
  bridgedPeers: (id: string) => Promise<PeerJson[]>
}

export interface BridgeCliInit {
  /** read when called: the tests set these up in beforeAll */
  dir: () => string
  mesh: () => ProcessMesh
  coord: () => LocalNode
  shards: number
  /** the environment zp runs with (an engine's SLURM_CONF) */
  env?: () => NodeJS.ProcessEnv | undefined
  /** more fields of every campaign (a retry policy) */
  campaign?: Record<string, unknown>
  timeoutMs?: number
}

export function bridgeCli (init: BridgeCliInit): BridgeCli {
  const zp: BridgeCli['zp'] = async (args, timeoutMs = init.timeoutMs ?? 120_000) => {
    const env = init.env?.()
    return await runCli('zp', [...args, '--data-dir', init.coord().dataDir], { timeoutMs, ...(env != null ? { env } : {}) })
  }
  return {
    zp,
    campaignFile: async (name, extra) => {
      const file = join(init.dir(), `${name}.json`)
      await writeFile(file, JSON.stringify({
        name,
        workload: { kind: 'module', module: './squares.mjs' },
        shards: { iterations: { total: init.shards * 3, perShard: 3, seed: 11 } },
        ...init.campaign,
        ...extra
      }))
      return file
    },
    status: async id => JSON.parse((await zp(['status', id, '--json'])).stdout) as CampaignStatus,
    allocations: async () => {
      const r = await zp(['bridge', 'list', '--json'])
      expect(r.code, r.stderr).toBe(0)
      return JSON.parse(r.stdout) as Allocation[]
    },
    bridgedPeers: async id => (await init.mesh().peers(init.coord())).filter(p => p.capabilities?.labels?.['zp.bridge'] === id)
  }
}

/**
 * pids of live (not zombie) processes carrying a bridge's marker: an
 * environment entry (`ZP_DASK_BRIDGE=<id>`) or a command-line argument
 * (`zp.bridge=<id>`). What a released allocation must not leave behind.
 */
export async function processesWith (marker: { env: string } | { arg: string }): Promise<number[]> {
  const found: number[] = []
  for (const pid of (await readdir('/proc')).filter(p => /^\d+$/.test(p))) {
    const file = 'env' in marker ? 'environ' : 'cmdline'
    const entries = (await readFile(`/proc/${pid}/${file}`, 'latin1').catch(() => '')).split('\0')
    if (!entries.includes('env' in marker ? marker.env : marker.arg)) continue
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    // gone meanwhile, or a zombie: not running
    if (stat !== '' && !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) found.push(Number(pid))
  }
  return found
}
