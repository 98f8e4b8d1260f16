import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { SlurmUpSchema, type SlurmUp } from '../../protocols/bridge/schema.ts'
import { attachedScript, detachedScript, shellQuote, toSlurmTime, type AttachedScriptOptions } from '../../bootstrap/slurm/script.ts'
import { tempDir, waitFor } from '../helpers.ts'

const exec = promisify(execFile)
const FAKE_NODE = fileURLToPath(new URL('../fixtures/slurm/fake-node.sh', import.meta.url))
const HOSTILE = [
  "it's", '$(touch /tmp/zp-pwned)', '`id`', 'a b\tc\nd', '"; rm -rf / #', '\\', "''", '', 'ünï €', '$HOME', '*', '-n', "'\"'\"'", '%A_%a'
]

let dir: { path: string, remove: () => Promise<void> }
/** process groups of the scripts a test started: none may outlive it */
const groups: number[] = []
beforeEach(async () => { dir = await tempDir('zp-slurm-script-') })
afterEach(async () => {
  for (const pid of groups.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {}
  }
  await dir.remove()
})

function attached (up: Partial<SlurmUp> = {}, more: Partial<AttachedScriptOptions> = {}): AttachedScriptOptions {
  return {
    ...SlurmUpSchema.parse({ nodes: 3, ...up }),
    argv: ['/bin/bash', FAKE_NODE],
    bootstrap: ['/ip4/10.0.0.1/tcp/4170/p2p/12D3KooWAbc'],
    drainMs: 20_000,
    jobName: 'zp-node',
    logDir: '/shared/logs',
    ...more
  }
}

/** The recorded argv of the fake node, after the script under test ran it. */
async function recordedArgv (task: string): Promise<string[]> {
  const raw = await readFile(join(dir.path, 'rec', `task-${task}`, 'argv'), 'utf8')
  return raw.split('\0').slice(0, -1)
}

/** Runs a batch script with bash as sbatch would, in its own process group (Slurm signals every process of a job). */
async function runScript (script: string, env: Record<string, string>): Promise<{ pid: number, exit: Promise<number | null> }> {
  const file = join(dir.path, 'job.sh')
  await writeFile(file, script)
  const child = spawn('/bin/bash', [file], {
    env: { PATH: process.env.PATH, FAKE_NODE_RECORD: join(dir.path, 'rec'), ...env },
    detached: true,
    stdio: 'ignore'
  })
  groups.push(child.pid!)
  const exit = new Promise<number | null>(resolve => child.on('exit', code => { resolve(code) }))
  return { pid: child.pid!, exit }
}

const SLURM_ENV = { SLURM_ARRAY_JOB_ID: '77', SLURM_ARRAY_TASK_ID: '2', SLURM_CPUS_PER_TASK: '3' }

describe('shellQuote', () => {
  it('hands bash every string back unchanged, whatever it holds', async () => {
    const { stdout } = await exec('/bin/bash', ['-c', `printf '%s\\0' ${HOSTILE.map(shellQuote).join(' ')}`])
    expect(stdout.split('\0').slice(0, -1)).toEqual(HOSTILE)
    expect(existsSync('/tmp/zp-pwned')).toBe(false)
  })

  it('refuses a NUL byte, which no shell word can hold', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/)
  })
})

describe('attachedScript', () => {
  it('submits one array of N tasks with the requested resources, extra options last', () => {
    const { args } = attachedScript(attached({ nodes: 4, partition: 'gpu', time: '1:00:00', gres: 'gpu:1', cpusPerTask: 8, mem: '4G', sbatchArgs: ['--account=lab', '--qos=low'] }))
    expect(args).toEqual([
      '--array=0-3', '--job-name=zp-node', '--output=/shared/logs/%A_%a.out',
      '--gres=gpu:1', '--cpus-per-task=8', '--mem=4G', '--partition=gpu', '--time=1:00:00', '--account=lab', '--qos=low'
    ])
    expect(attachedScript(attached({ nodes: 1 }, { logDir: '/a%b/' })).args).toEqual(['--array=0-0', '--job-name=zp-node', '--output=/a%%b/%A_%a.out'])
  })

  it('runs zp-node join on task-local scratch with the bridge labels, and exits with the node\'s code', async () => {
    const psk = join(dir.path, "key 'x'")
    const { script } = attachedScript(attached({ cpusPerTask: 3, idleMs: 120_000, pskFile: psk }, { argv: ['/bin/bash', FAKE_NODE, '--log-level', 'debug'], jobName: 'zp-node', bootstrap: ['/ip4/1.2.3.4/tcp/1', '/dns4/a b/tcp/2'] }))
    const run = await runScript(script, { ...SLURM_ENV, SLURM_TMPDIR: dir.path, FAKE_NODE_RUN_S: '0', FAKE_NODE_EXIT: '5' })
    expect(await run.exit).toBe(5)
    const dataDir = join(dir.path, 'zp-77_2')
    expect(await recordedArgv('2')).toEqual([
      '--log-level', 'debug', 'join', '/ip4/1.2.3.4/tcp/1', '/dns4/a b/tcp/2',
      '--name', 'zp-node-77-2', '--data-dir', dataDir, '--listen', '/ip4/0.0.0.0/tcp/0', '--no-api', '--no-resume',
      '--label', 'bridge=slurm', '--label', 'slurm.job=77', '--label', 'zp.bridge=slurm-77',
      '--exit-when-idle', '120000', '--psk', psk, '--slots', '3', '--drain-timeout-ms', '20000'
    ])
    // the fake node made its data dir; the script removed it on the way out
    expect(await readFile(join(dir.path, 'rec', 'task-2', 'data-dir'), 'utf8')).toBe(dataDir)
    expect(existsSync(dataDir)).toBe(false)
  })

  it('keeps hostile job names, addresses and key paths as single arguments', async () => {
    const { script } = attachedScript(attached({ pskFile: HOSTILE[1] }, { jobName: HOSTILE[0]!, bootstrap: HOSTILE.slice(2) }))
    const run = await runScript(script, { ...SLURM_ENV, SLURM_TMPDIR: dir.path, FAKE_NODE_RUN_S: '0' })
    expect(await run.exit).toBe(0)
    const argv = await recordedArgv('2')
    expect(argv.slice(1, 1 + HOSTILE.length - 2)).toEqual(HOSTILE.slice(2))
    expect(argv[argv.indexOf('--name') + 1]).toBe(`${HOSTILE[0]!}-77-2`)
    expect(argv[argv.indexOf('--psk') + 1]).toBe(HOSTILE[1])
    expect(argv).not.toContain('--slots')
    expect(argv).not.toContain('--exit-when-idle')
    expect(existsSync('/tmp/zp-pwned')).toBe(false)
  })

  it('defaults the data dir to /tmp without SLURM_TMPDIR', async () => {
    const { script } = attachedScript(attached())
    const run = await runScript(script, { SLURM_ARRAY_JOB_ID: `${process.pid}`, SLURM_ARRAY_TASK_ID: '0', FAKE_NODE_RUN_S: '0' })
    expect(await run.exit).toBe(0)
    const argv = await recordedArgv('0')
    expect(argv[argv.indexOf('--data-dir') + 1]).toBe(`/tmp/zp-${process.pid}_0`)
    expect(existsSync(`/tmp/zp-${process.pid}_0`)).toBe(false)
  })

  it('when Slurm sends SIGTERM to every process of the job, waits for the node to drain and exits with its code', async () => {
    const { script } = attachedScript(attached())
    const run = await runScript(script, { ...SLURM_ENV, SLURM_TMPDIR: dir.path, FAKE_NODE_DRAIN_S: '1', FAKE_NODE_EXIT: '0' })
    const rec = join(dir.path, 'rec', 'task-2')
    await waitFor(() => existsSync(join(rec, 'started')), { what: 'the fake node to start' })
    process.kill(-run.pid, 'SIGTERM')
    expect(await run.exit).toBe(0)
    // the shell outlived the node's drain (ending the job earlier would have SIGKILLed it mid-drain)
    expect(existsSync(join(rec, 'drained'))).toBe(true)
    expect(await readFile(join(rec, 'signals'), 'utf8')).toBe('TERM\n')
    expect(existsSync(join(dir.path, 'zp-77_2'))).toBe(false)
  })
})

describe('detachedScript', () => {
  it('submits the ranges relative to a base, throttled, with stdout and stderr per task', () => {
    const { args } = detachedScript({
      nodeArgv: ['/n', '/z'], manifestDir: '/s/m', arrayRanges: '0-9,12', base: 1000, arrayLimit: 4, jobName: 'zp-mc', logDir: '/s/m/logs',
      partition: 'batch', time: '0:10:00', sbatchArgs: ['--account=lab']
    })
    expect(args).toEqual([
      '--array=0-9,12%4', '--job-name=zp-mc', '--output=/s/m/logs/%A_%a.out', '--error=/s/m/logs/%A_%a.err',
      '--partition=batch', '--time=0:10:00', '--account=lab'
    ])
    expect(detachedScript({ nodeArgv: ['/n'], manifestDir: '/m', arrayRanges: '3', base: 0, jobName: 'j', logDir: '/l' }).args[0]).toBe('--array=3')
    expect(() => detachedScript({ nodeArgv: ['/n'], manifestDir: '/m', arrayRanges: '3', base: -1, jobName: 'j', logDir: '/l' })).toThrow(RangeError)
  })

  it('execs run-shard for shard base + task id, so Slurm\'s signals and exit code are the runner\'s own', async () => {
    const manifest = join(dir.path, "the 'manifest' $(x)")
    const { script } = detachedScript({ nodeArgv: ['/bin/bash', FAKE_NODE], manifestDir: manifest, arrayRanges: '0-9', base: 1000, jobName: 'j', logDir: '/l', execConfig: '/etc/zp/exec config.yaml' })
    const run = await runScript(script, { SLURM_ARRAY_TASK_ID: '4', FAKE_NODE_RUN_S: '0', FAKE_NODE_EXIT: '3' })
    expect(await run.exit).toBe(3)
    expect(await recordedArgv('4')).toEqual(['run-shard', '--manifest', manifest, '--index', '1004', '--exec-config', '/etc/zp/exec config.yaml'])
    expect(Number(await readFile(join(dir.path, 'rec', 'task-4', 'pid'), 'utf8'))).toBe(run.pid)
  })
})

describe('toSlurmTime', () => {
  it('rounds up to whole minutes, at least one (0 would mean no limit)', () => {
    expect(toSlurmTime(0)).toBe('0:01:00')
    expect(toSlurmTime(1)).toBe('0:01:00')
    expect(toSlurmTime(60_000)).toBe('0:01:00')
    expect(toSlurmTime(60_001)).toBe('0:02:00')
    expect(toSlurmTime(90 * 60_000)).toBe('1:30:00')
    expect(toSlurmTime(86_400_000)).toBe('1-00:00:00')
    expect(toSlurmTime(25 * 3_600_000 + 1)).toBe('1-01:01:00')
    expect(() => toSlurmTime(-1)).toThrow(RangeError)
    expect(() => toSlurmTime(Number.NaN)).toThrow(RangeError)
  })

  it('writes what the bridge schema accepts as a Slurm time', () => {
    for (const ms of [0, 59_999, 3_600_000, 3 * 86_400_000 + 7]) {
      expect(SlurmUpSchema.safeParse({ nodes: 1, time: toSlurmTime(ms) }).success).toBe(true)
    }
  })
})
