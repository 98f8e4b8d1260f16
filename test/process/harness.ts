import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { LocalNode, ZP_BIN, ZP_NODE_BIN } from '../../bootstrap/local.ts'
import { ApiClient, resolveApiTarget } from '../../node/api/client.ts'
import type { PeerJson } from '../../node/api/routes.ts'
import { tempDir, waitFor } from '../helpers.ts'

const exec = promisify(execFile)

/** the fixture modules that tests' campaign files (written to temp dirs) name */
const CAMPAIGN_FIXTURES = fileURLToPath(new URL('../fixtures/campaigns', import.meta.url))

/** Liveness fast enough for tests, slow enough not to flap on a loaded 2-core box; campaigns may name the fixture modules. */
export const FAST_FLAGS = ['--heartbeat-ms', '300', '--suspect-after-ms', '2000', '--dead-after-ms', '4000', '--no-onnx-probe', '--data-root', CAMPAIGN_FIXTURES]

export interface ProcessMesh {
  root: string
  nodes: LocalNode[]
  /** starts a node; joins through `via` (a node of this mesh or a raw address) if given */
  start: (name: string, opts?: { via?: LocalNode | string, args?: string[], dataDir?: string, outFile?: string, env?: NodeJS.ProcessEnv }) => Promise<LocalNode>
  peers: (node: LocalNode) => Promise<PeerJson[]>
  /** the control API of a node of this mesh */
  api: (node: LocalNode) => Promise<ApiClient>
  stop: () => Promise<void>
}

export async function createProcessMesh (): Promise<ProcessMesh> {
  const dir = await tempDir('zp-proc-')
  const nodes: LocalNode[] = []
  const clients = new Map<LocalNode, ApiClient>()
  const mesh: ProcessMesh = {
    root: dir.path,
    nodes,
    start: async (name, opts = {}) => {
      const via = typeof opts.via === 'string' ? opts.via : opts.via?.info?.multiaddrs[0]
      const node = await LocalNode.spawn({ name, dataDir: opts.dataDir ?? join(dir.path, name), outFile: opts.outFile, join: via, args: [...FAST_FLAGS, ...(opts.args ?? [])], env: opts.env })
      nodes.push(node)
      await node.ready({ timeoutMs: 60_000 })
      return node
    },
    api: async (node) => {
      let client = clients.get(node)
      if (client == null) {
        client = new ApiClient(await resolveApiTarget({ dataDir: node.dataDir }))
        clients.set(node, client)
      }
      return client
    },
    peers: async (node) => await (await mesh.api(node)).get<PeerJson[]>('/v1/peers'),
    stop: async () => {
      await Promise.all(nodes.map(async n => { await n.stop(10_000) }))
      // ZP_TEST_KEEP=1 keeps the nodes' data dirs (their logs under logs/) to look at a failing test
      if (process.env.ZP_TEST_KEEP === '1') process.stderr.write(`kept the process mesh in ${dir.path}\n`)
      else await dir.remove()
    }
  }
  return mesh
}

/** Waits until `observer` lists every one of `names` in `state`. */
export async function waitForStates (mesh: ProcessMesh, observer: LocalNode, names: string[], state: string, timeoutMs = 60_000): Promise<PeerJson[]> {
  return await waitFor(async () => {
    const peers = await mesh.peers(observer)
    return names.every(n => peers.find(p => p.name === n)?.state === state) ? peers : undefined
  }, { timeoutMs, what: `${observer.name} to see ${names.join(', ')} ${state}` })
}

/**
 * Runs a CLI (zp or zp-node) to completion; never throws on a non-zero exit.
 * `wrap` runs it through a command, e.g. `['ip', 'netns', 'exec', 'ns1']` to reach a node's API in a network namespace.
 */
export async function runCli (bin: 'zp' | 'zp-node', args: string[], opts: { env?: NodeJS.ProcessEnv, timeoutMs?: number, node?: string, wrap?: string[] } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  const script = bin === 'zp' ? ZP_BIN : ZP_NODE_BIN
  const [file, ...argv] = [...(opts.wrap ?? []), opts.node ?? process.execPath, script, ...args]
  try {
    const { stdout, stderr } = await exec(file!, argv, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 60_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number, stdout?: string, stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/** The JSON log lines a node wrote to its data dir (or to the --log-file it was given). */
export async function logLines (node: LocalNode, file = join(node.dataDir, 'logs', 'node.log')): Promise<Array<Record<string, unknown>>> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>)
}
