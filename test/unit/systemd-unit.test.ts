import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile, execFileSync } from 'node:child_process'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DEFAULT_ENV_FILE, ENV_EXAMPLE, SHIPPED_EXEC, UNIT_DRAIN_TIMEOUT_MS, installService, renderUnit } from '../../node/cli/install-service.ts'
import { tempDir } from '../helpers.ts'
import { parseNodeCommand, parseZpNode } from './zp-node-argv.ts'

const exec = promisify(execFile)
const SYSTEMD = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url))
const ZP_NODE_MJS = fileURLToPath(new URL('../../node/bin/zp-node.mjs', import.meta.url))

function has (cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
// Debian's systemd package has it; CI's image installs it (systemd is not PID 1 there, nor here: verify runs offline)
const ANALYZE = has('systemd-analyze')

/** systemd-analyze verify exits 0 on unknown keys and bad values; anything it says is a failure. */
async function verify (unit: string): Promise<{ code: number, stderr: string }> {
  try {
    const { stderr } = await exec('systemd-analyze', ['verify', unit])
    return { code: 0, stderr }
  } catch (err) {
    const e = err as { code: number, stderr: string }
    return { code: e.code, stderr: e.stderr }
  }
}

/** The lines of `KEY=` in a unit or env file, comments left out. */
function values (text: string, key: string): string[] {
  return text.split('\n').filter(l => l.startsWith(key + '=')).map(l => l.slice(key.length + 1))
}

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => { dir = await tempDir('zp-systemd-') })
afterAll(async () => { await dir?.remove() })

describe('deploy/systemd', () => {
  it('ships the unit install-service writes, rendered for /usr/local/bin/zp-node, and its env example', async () => {
    expect(await readFile(join(SYSTEMD, 'zp-node.service'), 'utf8')).toBe(renderUnit({ exec: SHIPPED_EXEC, envFile: DEFAULT_ENV_FILE }))
    expect(await readFile(join(SYSTEMD, 'zp-node.env.example'), 'utf8')).toBe(ENV_EXAMPLE)
  })

  it('gives the node longer to stop than the drain it passes, and never sets MemoryDenyWriteExecute (V8 JIT)', () => {
    const unit = renderUnit({ exec: SHIPPED_EXEC, envFile: DEFAULT_ENV_FILE })
    const drainMs = Number(/--drain-timeout-ms (\d+)/.exec(values(unit, 'ExecStart')[0]!)?.[1])
    expect(drainMs).toBe(UNIT_DRAIN_TIMEOUT_MS)
    const stopS = Number(/^(\d+)s$/.exec(values(unit, 'TimeoutStopSec')[0]!)?.[1])
    expect(stopS * 1000).toBeGreaterThan(drainMs)
    expect(values(unit, 'KillSignal')).toEqual(['SIGTERM'])
    expect(values(unit, 'Type')).toEqual(['exec'])
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute=/m)
  })

  it('runs a command line the real zp-node accepts, for every ZP_COMMAND and ZP_ARGS of the env example', async () => {
    const execStart = values(renderUnit({ exec: SHIPPED_EXEC, envFile: DEFAULT_ENV_FILE }), 'ExecStart')[0]!
    // the example's settings and the commented alternatives
    const settings = (key: string): string[] => ENV_EXAMPLE.split('\n').map(l => l.replace(/^#/, '')).flatMap(l => values(l, key))
    expect(settings('ZP_COMMAND')).toHaveLength(2)
    for (const command of settings('ZP_COMMAND')) {
      for (const args of [...settings('ZP_ARGS'), '']) {
        // systemd splits $VAR on white space and drops it when empty; ${VAR} is one word
        const words = execStart.replace('${STATE_DIRECTORY}', '/var/lib/zp-node').replace('$ZP_COMMAND', command).replace('$ZP_ARGS', args).split(/\s+/).filter(w => w !== '')
        expect(words[0]).toBe(SHIPPED_EXEC)
        const call = await parseNodeCommand(words.slice(1))
        expect(call.opts).toMatchObject({ dataDir: '/var/lib/zp-node', drainTimeoutMs: UNIT_DRAIN_TIMEOUT_MS })
      }
    }
  })

  it('install-service refuses a zp-node or Node that is missing or not executable, naming the fix, and writes nothing', async () => {
    const unitDir = join(dir.path, 'refused')
    await expect(installService({ unitDir, envFile: join(dir.path, 'r.env'), bin: join(dir.path, 'no-zp-node.mjs') }))
      .rejects.toThrow(/^the zp-node the unit would run \(.*no-zp-node\.mjs\) does not exist; install zp-mesh first .* or pass --bin PATH/)
    const plain = join(dir.path, 'plain.mjs')
    await writeFile(plain, '')
    await chmod(plain, 0o644)
    await expect(installService({ unitDir, envFile: join(dir.path, 'r.env'), bin: plain })).rejects.toThrow(/is not executable \(chmod \+x .*plain\.mjs\)/)
    await expect(installService({ unitDir, envFile: join(dir.path, 'r.env'), node: join(dir.path, 'no-node') })).rejects.toThrow(/^the Node\.js the unit would run zp-node with \(.*no-node\) does not exist; install Node 24/)
    expect(await stat(unitDir).catch(() => null)).toBeNull()
    expect(await parseZpNode(['install-service', '--user', 'zp', '--env', '/etc/zp.env', '--unit-dir', unitDir, '--bin', plain])).toMatchObject({ command: ['install-service'] })
  })

  it.skipIf(!ANALYZE)('install-service writes a unit systemd-analyze verifies without a word, and keeps an existing env file', async () => {
    const envFile = join(dir.path, 'etc', 'zp-node.env')
    for (const [i, user] of [undefined, 'zpnode'].entries()) {
      const unitDir = join(dir.path, `units-${i}`)
      const done = await installService({ unitDir, envFile, user, bin: ZP_NODE_MJS })
      expect(done.env).toBe(i === 0 ? envFile : null)
      const unit = await readFile(done.unit, 'utf8')
      expect(values(unit, 'ExecStart')[0]).toMatch(new RegExp(`^${process.execPath} ${ZP_NODE_MJS} \\$ZP_COMMAND `))
      expect(values(unit, 'EnvironmentFile')).toEqual([envFile])
      expect(await verify(done.unit)).toEqual({ code: 0, stderr: '' })
    }
    // the documented GPU options, turned on as a drop-in would
    const gpu = join(dir.path, 'units-0', 'zp-node.service')
    await writeFile(gpu, (await readFile(gpu, 'utf8')).replace(/^#(PrivateDevices|DevicePolicy|DeviceAllow|SupplementaryGroups)=/gm, '$1='))
    expect(values(await readFile(gpu, 'utf8'), 'DeviceAllow')).toHaveLength(5)
    expect(await verify(gpu)).toEqual({ code: 0, stderr: '' })
    expect(await readFile(envFile, 'utf8')).toBe(ENV_EXAMPLE)
    expect((await stat(envFile)).mode & 0o777).toBe(0o600)
    // the check itself: a unit with a typo is not passed
    const typo = join(dir.path, 'typo', 'zp-node.service')
    await installService({ unitDir: join(dir.path, 'typo'), envFile, bin: ZP_NODE_MJS })
    await writeFile(typo, (await readFile(typo, 'utf8')).replace('ProtectHome=yes', 'ProtectHomee=yes'))
    expect((await verify(typo)).stderr).toMatch(/Unknown key 'ProtectHomee'/)
  })

  it.skipIf(!ANALYZE)('is hardened to an exposure of at most 2.5 (systemd-analyze security)', async () => {
    // 1.4 today; what is left is what a GPU mesh node needs: the network (PrivateNetwork, IPAddressDeny, AF_INET),
    // writable-executable memory for V8 and ONNX Runtime, device groups (PrivateUsers), /proc for the probe.
    // 2.5 leaves room for a drop-in that opens the GPU devices, and fails a unit that loses a real protection.
    const unitDir = join(dir.path, 'security')
    const { unit } = await installService({ unitDir, envFile: join(dir.path, 's.env'), bin: ZP_NODE_MJS })
    const run = async (threshold: number): Promise<number> => await exec('systemd-analyze', ['security', '--offline=true', `--threshold=${threshold}`, unit]).then(() => 0, (err: { code: number }) => err.code)
    expect(await run(25)).toBe(0)
    await writeFile(unit, (await readFile(unit, 'utf8')).replace(/^(ProtectSystem|ProtectHome|PrivateDevices|CapabilityBoundingSet|NoNewPrivileges|SystemCallFilter)=.*\n/gm, ''))
    expect(await run(25)).not.toBe(0)
  })
})
