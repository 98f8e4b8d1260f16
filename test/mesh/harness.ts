import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, silentLogger } from '../../node/logger.ts'
import { ZpNode, type NodeOptions } from '../../node/node.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { tempDir, waitFor } from '../helpers.ts'

/** A small fixed capability report, so in-process tests do not spend seconds probing. */
export function fakeCapabilities (extra: CapabilityReport['capabilities'] = {}): CapabilityReport {
  return {
    probedAt: Date.now(),
    durationMs: 0,
    host: { hostname: 'test', platform: 'linux', arch: 'x64', cpuModel: 'Test CPU', cpuVendor: 'Test', cores: 2, physicalCores: 2, memoryBytes: 2 ** 30 },
    capabilities: { 'cpu.x86': { status: 'ok' }, 'onnx.ep.cpu': { status: 'ok' }, ...extra }
  }
}

/** the fixture modules that tests' campaign files (written to temp dirs) name */
const CAMPAIGN_FIXTURES = fileURLToPath(new URL('../fixtures/campaigns', import.meta.url))

export const FAST_TIMINGS = { heartbeatMs: 300, suspectAfterMs: 1500, deadAfterMs: 3000, redialTimeoutMs: 1000 }

export interface Mesh {
  nodes: ZpNode[]
  start: (opts?: Partial<NodeOptions>) => Promise<ZpNode>
  stop: () => Promise<void>
}

/** Starts real libp2p nodes in this process on loopback port 0, each with its own temp data dir. */
export async function createMesh (): Promise<Mesh> {
  const dir = await tempDir('zp-mesh-')
  const nodes: ZpNode[] = []
  return {
    nodes,
    start: async (opts = {}) => {
      const name = opts.name ?? `n${nodes.length}`
      const node = await ZpNode.start({
        dataDir: join(dir.path, name),
        name,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        api: false,
        probe: fakeCapabilities(),
        timings: FAST_TIMINGS,
        // ZP_TEST_LOG_DIR=dir keeps each node's log there (debugging a failing test)
        logger: process.env.ZP_TEST_LOG_DIR != null ? createLogger({ file: join(process.env.ZP_TEST_LOG_DIR, `${name}.log`), console: 'none', level: 'debug' }) : silentLogger(),
        logFile: false,
        dataRoots: [CAMPAIGN_FIXTURES],
        ...opts
      })
      nodes.push(node)
      return node
    },
    stop: async () => {
      await Promise.all(nodes.map(async n => { await n.stop() }))
      await dir.remove()
    }
  }
}

/** Waits until `node` lists each of `peers` in `state`. */
export async function waitForPeers (node: ZpNode, peers: ZpNode[], state = 'alive', timeoutMs = 30_000): Promise<void> {
  await waitFor(async () => {
    const view = await node.peers()
    return peers.every(p => view.find(v => v.peerId === p.peerId)?.state === state)
  }, { timeoutMs, what: `${node.name} to see ${peers.map(p => p.name).join(', ')} ${state}` })
}
