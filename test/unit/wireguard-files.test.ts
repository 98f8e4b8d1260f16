import { execFileSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parse as parseDotenv } from 'yaml'
import { tempDir } from '../helpers.ts'
import { runCli } from '../process/harness.ts'
import { parseNodeCommand } from './zp-node-argv.ts'

// The generator as people run it: the real zp-node program in a child process, real files in a temp dir.

/** the real zp-node program in a child process; never throws on a non-zero exit */
async function zpNode (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await runCli('zp-node', args)
}

/** `wg pubkey`, computed apart from the generator: X25519(private scalar, base point u = 9) */
function derivePublic (privateKey: string): string {
  const d = Buffer.from(privateKey, 'base64')
  expect(d).toHaveLength(32)
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), d]), format: 'der', type: 'pkcs8' })
  const basePoint = Buffer.alloc(32)
  basePoint[0] = 9
  const pub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), basePoint]), format: 'der', type: 'spki' })
  return diffieHellman({ privateKey: priv, publicKey: pub }).toString('base64')
}

/** [Peer] sections of a wg-quick file, by the `# name` line each starts with */
function peers (conf: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>()
  for (const section of conf.split('[Peer]\n').slice(1)) {
    const [title, ...lines] = section.trim().split('\n')
    out.set(title!.replace(/^# /, ''), Object.fromEntries(lines.map((l) => l.split(' = ') as [string, string])))
  }
  return out
}

const field = (conf: string, name: string): string => new RegExp(`^${name} = (.+)$`, 'm').exec(conf)![1]!
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777

const hasWg = ((): boolean => {
  try {
    execFileSync('wg', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

let tmp: Awaited<ReturnType<typeof tempDir>>
let dir: string
let inventory: string
beforeEach(async () => {
  tmp = await tempDir('zp-wg-')
  dir = join(tmp.path, 'overlay')
  inventory = join(tmp.path, 'hosts.yaml')
  await writeFile(inventory, [
    'hosts:',
    '  - { name: lab-a, endpoint: 203.0.113.1:51820, role: bootstrap }',
    '  - { name: gpu-1, endpoint: 203.0.113.2:51820, address: 10.77.0.10 }',
    '  - { name: gpu-2, endpoint: gpu-2.lab.example:51820 }'
  ].join('\n'))
})
afterEach(async () => { await tmp.remove() })

async function privateKeys (): Promise<Map<string, string>> {
  const keys = new Map<string, string>()
  for (const file of (await readdir(join(dir, 'keys'))).filter((f) => f.endsWith('.key'))) {
    keys.set(file.slice(0, -4), (await readFile(join(dir, 'keys', file), 'utf8')).trim())
  }
  return keys
}

/** Every host's config holds every other host, with the public key derived from that host's private key. */
async function expectFullMesh (names: string[]): Promise<void> {
  const keys = await privateKeys()
  expect([...keys.keys()].sort()).toEqual([...names].sort())
  for (const name of names) {
    const conf = await readFile(join(dir, name, 'zp0.conf'), 'utf8')
    expect(field(conf, 'PrivateKey')).toBe(keys.get(name))
    const seen = peers(conf)
    expect([...seen.keys()].sort()).toEqual(names.filter((n) => n !== name).sort())
    for (const [peer, p] of seen) {
      expect(p.PublicKey).toBe(derivePublic(keys.get(peer)!))
      expect(p.PersistentKeepalive).toBe('25')
    }
  }
}

describe('zp-node wireguard', () => {
  it('init writes keys 0600, a full mesh of configs and env files, and prints no private key', async () => {
    const res = await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir, '--preshared-keys')
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    await expectFullMesh(['lab-a', 'gpu-1', 'gpu-2'])
    const keys = await privateKeys()
    const state = await readFile(join(dir, 'state.json'), 'utf8')
    for (const key of keys.values()) {
      expect(res.stdout).not.toContain(key)
      expect(state).not.toContain(key)
    }
    expect(JSON.parse(state).hosts.map((h: { name: string, address: string }) => [h.name, h.address]))
      .toEqual([['lab-a', '10.77.0.1'], ['gpu-1', '10.77.0.10'], ['gpu-2', '10.77.0.2']])
    for (const name of keys.keys()) {
      expect(await mode(join(dir, 'keys', `${name}.key`))).toBe(0o600)
      expect(await mode(join(dir, name, 'zp0.conf'))).toBe(0o600)
    }
    expect(await mode(join(dir, 'mesh.key'))).toBe(0o600)
    expect((await readdir(join(dir, 'keys', 'psk'))).sort()).toEqual(['gpu-1_gpu-2.psk', 'gpu-1_lab-a.psk', 'gpu-2_lab-a.psk'])
    for (const f of await readdir(join(dir, 'keys', 'psk'))) expect(await mode(join(dir, 'keys', 'psk', f))).toBe(0o600)
    // both ends of a pair hold the same preshared key
    const a = peers(await readFile(join(dir, 'lab-a', 'zp0.conf'), 'utf8'))
    const g = peers(await readFile(join(dir, 'gpu-1', 'zp0.conf'), 'utf8'))
    expect(a.get('gpu-1')!.PresharedKey).toBe(g.get('lab-a')!.PresharedKey)
    expect(a.get('gpu-1')!.PresharedKey).not.toBe(a.get('gpu-2')!.PresharedKey)
    expect(a.get('gpu-1')).toMatchObject({ AllowedIPs: '10.77.0.10/32', Endpoint: '203.0.113.2:51820' })
  })

  it('the env file is a command line the real zp-node join accepts', async () => {
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir)).code).toBe(0)
    const env = parseDotenv((await readFile(join(dir, 'gpu-2', 'zp-node.env'), 'utf8')).replaceAll('=', ': ')) as Record<string, string>
    expect(env).toEqual({
      ZP_NAME: 'gpu-2',
      ZP_LISTEN: '/ip4/10.77.0.2/tcp/4170',
      ZP_ANNOUNCE: '/ip4/10.77.0.2/tcp/4170',
      ZP_BOOTSTRAP: '10.77.0.1:4170',
      ZP_PSK_FILE: '/etc/zp-node/mesh.key',
      ZP_COMMAND: 'join 10.77.0.1:4170',
      ZP_ARGS: '--listen /ip4/10.77.0.2/tcp/4170 --announce /ip4/10.77.0.2/tcp/4170 --psk /run/credentials/zp-node.service/psk --name gpu-2'
    })
    const call = await parseNodeCommand(['join', ...env.ZP_BOOTSTRAP!.split(' '), '--listen', env.ZP_LISTEN!, '--announce', env.ZP_ANNOUNCE!, '--psk', env.ZP_PSK_FILE!, '--name', env.ZP_NAME!])
    expect(call).toMatchObject({ command: ['join'], args: ['10.77.0.1:4170'], opts: { psk: '/etc/zp-node/mesh.key', name: 'gpu-2' } })
    // what the systemd unit runs with this file: zp-node $ZP_COMMAND --data-dir … $ZP_ARGS (systemd splits both on spaces)
    const unit = await parseNodeCommand([...env.ZP_COMMAND!.split(' '), '--data-dir', '/var/lib/zp-node', ...env.ZP_ARGS!.split(' ')])
    expect(unit).toMatchObject({ command: ['join'], args: ['10.77.0.1:4170'], opts: { psk: '/run/credentials/zp-node.service/psk', name: 'gpu-2', announce: ['/ip4/10.77.0.2/tcp/4170'] } })
  })

  it('init refuses a folder that already holds an overlay and leaves its keys alone', async () => {
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir)).code).toBe(0)
    const before = await privateKeys()
    const again = await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir)
    expect(again.code).toBe(2)
    expect(again.stderr).toMatch(/already holds an overlay .*add-host .*new --out folder/)
    expect(await privateKeys()).toEqual(before)
  })

  it('add-host keeps every existing key byte-identical and adds the new peer everywhere', async () => {
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir, '--preshared-keys')).code).toBe(0)
    const files = async (): Promise<Map<string, Buffer>> => {
      const out = new Map<string, Buffer>()
      for (const f of await readdir(join(dir, 'keys'), { recursive: true })) {
        if (f.endsWith('.key') || f.endsWith('.psk') || f.endsWith('.pub')) out.set(f, await readFile(join(dir, 'keys', f)))
      }
      out.set('mesh.key', await readFile(join(dir, 'mesh.key')))
      return out
    }
    const before = await files()
    const res = await zpNode('wireguard', 'add-host', dir, 'gpu-3', '198.51.100.7:51820', '--bootstrap')
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    const after = await files()
    for (const [f, bytes] of before) expect(after.get(f)?.equals(bytes), f).toBe(true)
    await expectFullMesh(['lab-a', 'gpu-1', 'gpu-2', 'gpu-3'])
    expect(peers(await readFile(join(dir, 'lab-a', 'zp0.conf'), 'utf8')).get('gpu-3')).toMatchObject({ AllowedIPs: '10.77.0.3/32', Endpoint: '198.51.100.7:51820' })
    expect(await readFile(join(dir, 'gpu-1', 'zp-node.env'), 'utf8')).toContain('ZP_BOOTSTRAP="10.77.0.1:4170 10.77.0.3:4170"')
    for (const key of (await privateKeys()).values()) expect(res.stdout).not.toContain(key)

    const dup = await zpNode('wireguard', 'add-host', dir, 'gpu-4', '198.51.100.7:51820')
    expect(dup.code).toBe(2)
    expect(dup.stderr).toContain("host 'gpu-4' endpoint: 198.51.100.7:51820 is also the endpoint of 'gpu-3'")
    const outside = await zpNode('wireguard', 'add-host', dir, 'gpu-4', 'h4:51820', '--address', '10.99.0.1')
    expect(outside.code).toBe(2)
    expect(outside.stderr).toContain("host 'gpu-4' address: 10.99.0.1 is outside the overlay 10.77.0.0/24")
  })

  it('remove-host drops the host from every config and deletes its keys', async () => {
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir, '--preshared-keys')).code).toBe(0)
    const res = await zpNode('wireguard', 'remove-host', dir, 'gpu-1')
    expect(res.stderr).toBe('')
    expect(res.code).toBe(0)
    await expectFullMesh(['lab-a', 'gpu-2'])
    expect((await readdir(dir)).sort()).toEqual(['gpu-2', 'keys', 'lab-a', 'mesh.key', 'state.json'])
    expect(await readdir(join(dir, 'keys', 'psk'))).toEqual(['gpu-2_lab-a.psk'])
    expect(await readFile(join(dir, 'state.json'), 'utf8')).not.toContain('gpu-1')

    const last = await zpNode('wireguard', 'remove-host', dir, 'lab-a')
    expect(last.code).toBe(2)
    expect(last.stderr).toContain("'lab-a' is the only bootstrap host; add another first")
    expect((await zpNode('wireguard', 'remove-host', dir, 'nope')).stderr).toContain('has no host \'nope\'; its hosts are lab-a, gpu-2')
  })

  it('an unreadable key file is named with the fix', async () => {
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir)).code).toBe(0)
    await writeFile(join(dir, 'keys', 'gpu-2.key'), 'garbage\n')
    const res = await zpNode('wireguard', 'add-host', dir, 'gpu-3', 'h3:51820')
    expect(res.code).toBe(2)
    expect(res.stderr).toContain(`${join(dir, 'keys', 'gpu-2.key')} is not a WireGuard key`)
  })

  it('wg pubkey agrees with the public keys in the configs', async ({ skip }) => {
    if (!hasWg) return skip('wireguard-tools is not installed (apt-get install wireguard-tools)')
    expect((await zpNode('wireguard', 'init', '--inventory', inventory, '--out', dir)).code).toBe(0)
    const keys = await privateKeys()
    const peersOfA = peers(await readFile(join(dir, 'lab-a', 'zp0.conf'), 'utf8'))
    for (const name of ['gpu-1', 'gpu-2']) {
      expect(execFileSync('wg', ['pubkey'], { input: keys.get(name)! + '\n' }).toString().trim()).toBe(peersOfA.get(name)!.PublicKey)
    }
  })
})
