import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ZP_BIN, type LocalNode } from '../../bootstrap/local.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))
// debug: the per-shard lines ('shard done') are debug lines; trust-mesh: each node works for the other's coordinator
const NODE_ARGS = ['--slots', '2', '--log-level', 'debug', '--trust-mesh']

type Line = Record<string, unknown> & { node: string, peerId: string, time: string }

let mesh: ProcessMesh
let scratch: { path: string, remove: () => Promise<void> }
let a: LocalNode
let b: LocalNode
let campaign: string

async function submit (node: LocalNode, name: string, wait: boolean): Promise<string> {
  const file = join(scratch.path, `${name}.json`)
  await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, shards: { iterations: { total: 16, perShard: 2, seed: 1 } }, params: { slowMs: 20 } }))
  const r = await runCli('zp', ['submit', file, '--json', ...(wait ? ['--wait'] : []), '--data-dir', node.dataDir])
  expect(r.code, r.stderr).toBe(0)
  return (JSON.parse(r.stdout) as CampaignStatus).id
}

async function logs (node: LocalNode, args: string[]): Promise<{ code: number, lines: Line[], stderr: string }> {
  const r = await runCli('zp', ['logs', ...args, '--data-dir', node.dataDir])
  return { code: r.code, stderr: r.stderr, lines: r.stdout.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Line) }
}

beforeAll(async () => {
  scratch = await tempDir('zp-proc-logs-')
  mesh = await createProcessMesh()
  a = await mesh.start('a', { args: NODE_ARGS })
  b = await mesh.start('b', { via: a, args: NODE_ARGS })
  await waitFor(async () => (await mesh.peers(b)).filter(p => p.state === 'alive' && p.capabilities != null).length === 2, { timeoutMs: 60_000, what: 'two nodes with their capabilities' })
  // b coordinates; the logs are asked of a, which did not
  campaign = await submit(b, 'logged', true)
})
afterAll(async () => {
  await mesh?.stop()
  await scratch?.remove()
})

describe('zp logs on a 2-node mesh of real processes', () => {
  it('merges the campaign\'s lines of both nodes in time order, asked of the node that did not coordinate it', async () => {
    // a shard's 'shard done' is logged just before its result is acknowledged: wait for both nodes' to be in their files
    const r = await waitFor(async () => {
      const got = await logs(a, [campaign, '--json'])
      return new Set(got.lines.map(l => l.node)).size === 2 && got.lines.some(l => l.msg === 'campaign logged SUCCEEDED') ? got : undefined
    }, { timeoutMs: 20_000, what: 'lines of the campaign from both nodes' })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe('')
    expect(r.lines.every(l => l.campaign === campaign)).toBe(true)
    const times = r.lines.map(l => Date.parse(l.time))
    expect(times).toEqual([...times].sort((x, y) => x - y))
    // the coordinator's lines come from b, and shards ran on both
    expect(r.lines.filter(l => l.msg === 'campaign logged submitted').map(l => l.node)).toEqual(['b'])
    expect(new Set(r.lines.filter(l => l.msg === 'shard done').map(l => l.node))).toEqual(new Set(['a', 'b']))
  })

  it('narrows to one shard, or one node; human lines by default', async () => {
    const shard = await logs(a, [campaign, '--shard', '3', '--json'])
    expect(shard.code, shard.stderr).toBe(0)
    expect(shard.lines.length).toBeGreaterThan(0)
    expect(shard.lines.every(l => l.campaign === campaign && l.shard === 3)).toBe(true)
    expect(shard.lines.some(l => l.msg === 'shard done')).toBe(true)

    const onlyB = await logs(a, [campaign, '--node', 'b', '--json'])
    expect(onlyB.code, onlyB.stderr).toBe(0)
    expect(onlyB.lines.length).toBeGreaterThan(0)
    expect(onlyB.lines.every(l => l.node === 'b' && l.campaign === campaign)).toBe(true)

    const human = await runCli('zp', ['logs', campaign, '--shard', '3', '--data-dir', a.dataDir])
    expect(human.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}  [ab]  DEBUG  ${campaign}/3  shard done  actor=worker  attempt=1  durationMs=\\d+`, 'm'))
  })

  it('refuses an unknown node or a bad shard with exit 2, naming the fix', async () => {
    const node = await logs(a, [campaign, '--node', 'nope'])
    expect(node.code).toBe(2)
    expect(node.stderr).toMatch(/no node named 'nope' in the mesh; the nodes are: a, b/)
    const shard = await runCli('zp', ['logs', campaign, '--shard', 'x', '--data-dir', a.dataDir])
    expect(shard.code).toBe(2)
    expect(shard.stderr).toMatch(/--shard takes a shard index/)
  })

  it('-f prints the lines of a campaign submitted after it started, until interrupted', async () => {
    const child = spawn(process.execPath, [ZP_BIN, 'logs', '-f', '--json', '--since', '1s', '--data-dir', a.dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => { resolve(code) }))
    try {
      const second = await submit(b, 'followed', false)
      const seen = await waitFor(() => {
        const lines = out.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Line)
        const mine = lines.filter(l => l.campaign === second)
        return new Set(mine.map(l => l.node)).size === 2 && mine.some(l => l.msg === 'campaign followed SUCCEEDED') ? lines : undefined
      }, { timeoutMs: 20_000, what: 'zp logs -f to print the second campaign\'s lines from both nodes' })
      expect(seen.length).toBeGreaterThan(0)
      child.kill('SIGINT')
      expect(await exited).toBe(0)
      expect(err).toBe('')
    } finally {
      child.kill('SIGKILL')
    }
  })
})
