import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ZP_NODE_BIN } from '../../bootstrap/local.ts'
import { tempDir, waitFor } from '../helpers.ts'
import { parseNodeCommand, parseZp, parseZpNode } from '../unit/zp-node-argv.ts'
import { createProcessMesh, runCli, type ProcessMesh } from './harness.ts'

// deploy/xen/README.md is followed by hand on machines this cannot reach; what it says about zp and zp-node is
// held to the real CLI here: every command in it parses, and those that need no Xen, systemd or WireGuard run,
// the overlay's addresses standing in as loopback addresses (10.77.0.x → 127.77.0.x, which Linux routes on lo).

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const GUIDE = join(REPO, 'deploy/xen/README.md')

interface GuideCommand {
  bin: 'zp' | 'zp-node'
  /** what follows the binary, as the shell would split it */
  argv: string[]
  /** the line as written, for messages */
  text: string
  /** the comment after it, if any */
  comment: string
}

/** Shell words, quotes removed; enough for the one-line commands a guide shows. */
function words (segment: string): string[] {
  return [...segment.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map(m => m[1] ?? m[2] ?? m[3]!)
}

/** The zp / zp-node command of one shell command, without sudo, VAR=value prefixes and npx; null for others. */
function asCommand (segment: string, text: string, comment: string): GuideCommand | null {
  const argv = words(segment)
  while (argv[0] === 'sudo' || argv[0] === 'npx' || /^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[0] ?? '')) argv.shift()
  const bin = argv.shift()
  return bin === 'zp' || bin === 'zp-node' ? { bin, argv, text, comment } : null
}

/** The commands of a shell line: split at &&, ; and |, with its comment cut off. */
function lineCommands (line: string): GuideCommand[] {
  const hash = line.search(/(^|\s)#/)
  const code = hash < 0 ? line : line.slice(0, hash)
  const comment = hash < 0 ? '' : line.slice(hash).replace(/^\s*#\s*/, '').trim()
  return code.split(/&&|;|\|/).flatMap(s => asCommand(s, line.trim(), comment) ?? [])
}

interface Guide {
  commands: GuideCommand[]
  blocks: Array<{ info: string, body: string }>
}

/**
 * Every zp and zp-node command of the guide: each line of every fenced block (YAML left out; `\` continuations
 * joined), every inline code span that starts with one, and the command the unit runs from the env block.
 */
function readGuide (text: string): Guide {
  const blocks: Guide['blocks'] = []
  const commands: GuideCommand[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const fence = /^```(\S*)/.exec(lines[i]!)
    if (fence == null) {
      for (const span of lines[i]!.matchAll(/`([^`]+)`/g)) {
        if (/^(sudo\s+)?(npx\s+)?zp(-node)?\s+\S/.test(span[1]!)) commands.push(...lineCommands(span[1]!))
      }
      continue
    }
    const body: string[] = []
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!)
    blocks.push({ info: fence[1]!, body: body.join('\n') })
    if (fence[1] === 'yaml') continue
    for (const line of body.join('\n').replace(/\\\n\s*/g, ' ').split('\n')) commands.push(...lineCommands(line))
  }
  const env = envBlock(blocks)
  commands.push({ bin: 'zp-node', argv: [...words(env.ZP_COMMAND), ...words(env.ZP_ARGS)], text: 'ZP_COMMAND + ZP_ARGS', comment: '' })
  return { commands, blocks }
}

/** KEY="value" lines of the block that sets ZP_COMMAND (the domU's /etc/zp-node/zp-node.env). */
function envBlock (blocks: Guide['blocks']): Record<'ZP_COMMAND' | 'ZP_ARGS', string> {
  const block = blocks.find(b => /^ZP_COMMAND=/m.test(b.body))
  if (block == null) throw new Error(`${GUIDE} has no block setting ZP_COMMAND (the env file of step 6)`)
  return envValues(block.body) as Record<'ZP_COMMAND' | 'ZP_ARGS', string>
}

function envValues (text: string): Record<string, string> {
  return Object.fromEntries([...text.matchAll(/^([A-Z_]+)=(?:"([^"]*)"|(\S*))$/gm)].map(m => [m[1]!, m[2] ?? m[3]!]))
}

const name = (c: GuideCommand): string => `${c.bin} ${c.argv.join(' ')}`
/** A command's subcommand path, e.g. 'zp-node wireguard init', as the real parser sees it; null if it refuses it (the first test says why). */
async function path (c: GuideCommand): Promise<string | null> {
  try {
    const call = c.bin === 'zp' ? await parseZp(c.argv) : await parseZpNode(c.argv)
    return `${c.bin} ${call.command.join(' ')}`
  } catch {
    return null
  }
}

/** Commands these tests run, by subcommand path; each must be in the guide, and each the guide has is run. */
const RUN = ['zp-node wireguard init', 'zp-node wireguard add-host', 'zp-node wireguard remove-host', 'zp-node install-service', 'zp-node probe', 'zp-node join', 'zp-node health', 'zp peers', 'zp submit']

let guide: Guide
let tmp: { path: string, remove: () => Promise<void> }
let mesh: ProcessMesh
const ran = new Set<GuideCommand>()
const parsed = new Set<GuideCommand>()

async function commandsAt (p: string): Promise<GuideCommand[]> {
  const found: GuideCommand[] = []
  for (const c of guide.commands) if (await path(c) === p) found.push(c)
  expect(found, `the guide has a '${p}' command`).not.toHaveLength(0)
  return found
}

/** Runs a guide command here: its paths replaced by this test's, with `more` flags after it. */
async function run (c: GuideCommand, swap: Record<string, string>, more: string[] = []): Promise<{ code: number, stdout: string, stderr: string }> {
  const argv = c.argv.map(a => swap[a] ?? a)
  const r = await runCli(c.bin, [...argv, ...more], { timeoutMs: 120_000 })
  ran.add(c)
  return r
}

beforeAll(async () => {
  guide = readGuide(await readFile(GUIDE, 'utf8'))
  tmp = await tempDir('zp-xen-guide-')
  mesh = await createProcessMesh()
})
afterAll(async () => {
  await mesh?.stop()
  await tmp?.remove()
})

describe('deploy/xen/README.md', () => {
  it('has only zp and zp-node commands the real CLI accepts', async () => {
    expect(guide.commands.length).toBeGreaterThan(8)
    const refused: string[] = []
    for (const c of guide.commands) {
      try {
        if (c.text === 'ZP_COMMAND + ZP_ARGS') await parseNodeCommand(c.argv)
        else if (c.bin === 'zp') await parseZp(c.argv)
        else await parseZpNode(c.argv)
        parsed.add(c)
      } catch (err) {
        refused.push(`${c.text} → ${name(c)}: ${(err as Error).message}`)
      }
    }
    expect(refused).toEqual([])
  })

  it('makes the overlay it describes from its own inventory: addresses, files and the env lines it shows', async () => {
    const inventory = guide.blocks.find(b => b.info === 'yaml' && /^hosts:/m.test(b.body))
    expect(inventory, 'the hosts.yaml block').toBeDefined()
    await writeFile(join(tmp.path, 'hosts.yaml'), inventory!.body)
    const out = join(tmp.path, 'overlay')
    const swap = { 'hosts.yaml': join(tmp.path, 'hosts.yaml'), 'overlay/': out, overlay: out }

    for (const c of await commandsAt('zp-node wireguard init')) {
      const r = await run(c, swap)
      expect(r.stderr).toBe('')
      expect(r.code).toBe(0)
    }
    const state = JSON.parse(await readFile(join(out, 'state.json'), 'utf8')) as { hosts: Array<{ name: string, address: string }> }
    expect(state.hosts.map(h => `${h.name} ${h.address}`)).toEqual(['lab-a 10.77.0.1', 'gpu-vm1 10.77.0.2'])
    for (const file of ['gpu-vm1/zp0.conf', 'lab-a/zp0.conf', 'mesh.key']) expect((await stat(join(out, file))).mode & 0o777, file).toBe(0o600)

    // the env file the guide shows is the generator's last two lines, plus --trust-mesh
    const generated = envValues(await readFile(join(out, 'gpu-vm1', 'zp-node.env'), 'utf8'))
    expect(envBlock(guide.blocks)).toEqual({ ZP_COMMAND: generated.ZP_COMMAND, ZP_ARGS: `${generated.ZP_ARGS} --trust-mesh` })

    // add-host and remove-host as written: gpu-vm2 comes and goes, gpu-vm1's config is the same after
    const before = await readFile(join(out, 'gpu-vm1', 'zp0.conf'), 'utf8')
    for (const c of await commandsAt('zp-node wireguard add-host')) expect((await run(c, swap)).code).toBe(0)
    expect(await readFile(join(out, 'gpu-vm2', 'zp0.conf'), 'utf8')).toMatch(/Address = 10\.77\.0\.3\/24/)
    for (const c of await commandsAt('zp-node wireguard remove-host')) expect((await run(c, swap)).code).toBe(0)
    expect(await readFile(join(out, 'gpu-vm1', 'zp0.conf'), 'utf8')).toBe(before)
  })

  it('install-service writes the unit whose commented lines its drop-in enables', async () => {
    const unitDir = join(tmp.path, 'systemd')
    const envFile = join(tmp.path, 'etc', 'zp-node.env')
    for (const c of await commandsAt('zp-node install-service')) {
      const r = await run(c, {}, ['--unit-dir', unitDir, '--env', envFile])
      expect(r.code, r.stderr).toBe(0)
    }
    const unit = await readFile(join(unitDir, 'zp-node.service'), 'utf8')
    expect(unit).toContain(`ExecStart=${process.execPath} ${ZP_NODE_BIN} $ZP_COMMAND`)
    expect(await stat(envFile)).toBeTruthy()
    // the guide names the unit's command by the checkout's paths: the pinned Node and the bin script
    expect(await stat(join(REPO, 'node_modules/node/bin/node'))).toBeTruthy()
    expect(await readFile(GUIDE, 'utf8')).toContain('`/opt/zp-mesh/node_modules/node/bin/node /opt/zp-mesh/node/bin/zp-node.mjs`')
    const dropIn = guide.blocks.find(b => b.body.includes('LoadCredential='))
    expect(dropIn, 'the drop-in block').toBeDefined()
    const settings = dropIn!.body.split('\n').filter(l => /^[A-Z][A-Za-z]+=/.test(l))
    expect(settings.length).toBeGreaterThan(3)
    for (const line of settings) expect(unit.split('\n'), `the unit has '#${line}' to enable`).toContain(`#${line}`)
  })

  it('probe shows the device keys the guide reads, with and without the ONNX probe', async () => {
    for (const c of await commandsAt('zp-node probe')) {
      const r = await run(c, {}, ['--json'])
      expect(r.code, r.stderr).toBe(0)
      const caps = (JSON.parse(r.stdout) as { capabilities: Record<string, { status: string }> }).capabilities
      for (const key of ['gpu.nvidia', 'gpu.nvidia.cuda', 'gpu.amd', 'gpu.amd.rocm', 'npu.intel']) expect(['ok', 'unavailable', 'error']).toContain(caps[key]?.status)
      if (c.argv.includes('--no-onnx-probe')) expect(caps['onnx.ep.cpu']).toBeUndefined()
      else expect(caps['onnx.ep.cpu']?.status).toBe('ok')
    }
  })

  it('runs the env file\'s node in the overlay (on loopback), and health, peers and submit say what the guide says', async () => {
    const out = join(tmp.path, 'overlay')
    const port = await freePort(['127.77.0.1', '127.77.0.2'])
    // the overlay on loopback, the credential systemd would mount as the key file itself
    const local = (text: string): string => text.replaceAll('10.77.0.', '127.77.0.').replaceAll(':4170', `:${port}`).replaceAll('/tcp/4170', `/tcp/${port}`)
      .replaceAll('/run/credentials/zp-node.service/psk', join(out, 'mesh.key'))
    const nodeArgs = (env: Record<string, string>): { via: string, args: string[] } => {
      const [command, ...bootstrap] = words(local(env.ZP_COMMAND!))
      expect(command).toBe('join')
      expect(bootstrap).toHaveLength(1)
      return { via: bootstrap[0]!, args: words(local(env.ZP_ARGS!)) }
    }
    // lab-a from its generated file with the guide's --trust-mesh; gpu-vm1 from the guide's env block
    const labEnv = envValues(await readFile(join(out, 'lab-a', 'zp-node.env'), 'utf8'))
    const labA = await mesh.start('lab-a', { ...nodeArgs({ ...labEnv, ZP_ARGS: `${labEnv.ZP_ARGS} --trust-mesh` }), dataDir: join(tmp.path, 'lab-a') })
    const [unitCommand] = await commandsAt('zp-node join')
    const gpuVm1 = await mesh.start('gpu-vm1', { ...nodeArgs(envBlock(guide.blocks)), dataDir: join(tmp.path, 'gpu-vm1') })
    // the unit's command, run with the harness's test flags (loopback API, fast liveness) added
    ran.add(unitCommand!)
    const swap = { '/var/lib/zp-node': gpuVm1.dataDir, 'examples/monte-carlo/campaign.yaml': resolve(REPO, 'examples/monte-carlo/campaign.yaml') }

    for (const c of await commandsAt('zp-node health')) {
      const r = await waitFor(async () => { const h = await run(c, swap); return h.code === 0 ? h : undefined }, { timeoutMs: 60_000, what: `${name(c)} to exit 0` })
      expect(r.stdout.trim()).toBe(c.comment.split(/\s{2,}/)[0])
    }
    for (const c of await commandsAt('zp peers')) {
      const table = await waitFor(async () => { const r = await run(c, swap); return (r.stdout.match(/ALIVE/g) ?? []).length === 2 ? r.stdout : undefined }, { what: `${name(c)} to list both nodes ALIVE` })
      for (const text of ['lab-a', 'gpu-vm1', `127.77.0.1:${port}`, `127.77.0.2:${port}`]) expect(table).toContain(text)
    }
    for (const c of await commandsAt('zp submit')) {
      const r = await run(c, swap)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr + r.stdout).toMatch(/SUCCEEDED \| 100\.0% \| 40\/40 shards/)
      expect(r.stdout).toContain('## Per node')
    }
    expect(labA.proc.exitCode).toBeNull()
  })

  it('ran or parsed every zp command in it, and ran each kind it runs', async () => {
    const neither = guide.commands.filter(c => !ran.has(c) && !parsed.has(c)).map(name)
    expect(neither).toEqual([])
    const kinds = new Set<string>()
    for (const c of ran) kinds.add(await path(c) ?? name(c))
    expect([...kinds].sort()).toEqual([...RUN].sort())
  })
})

/** A TCP port free on every one of `hosts` (loopback addresses), for nodes that must share one as the overlay's do. */
async function freePort (hosts: string[]): Promise<number> {
  const listen = async (host: string, port: number): Promise<number | null> => await new Promise(done => {
    const server = createServer()
    server.once('error', () => { done(null) })
    server.listen(port, host, () => {
      const got = (server.address() as { port: number }).port
      server.close(() => { done(got) })
    })
  })
  return await waitFor(async () => {
    const port = await listen(hosts[0]!, 0)
    if (port == null) return undefined
    for (const host of hosts.slice(1)) if (await listen(host, port) == null) return undefined
    return port
  }, { timeoutMs: 10_000, what: `a port free on ${hosts.join(' and ')}` })
}
