import { execFile } from 'node:child_process'
import { access, constants, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/**
 * The project's Slurm test cluster (slurm-cluster.sh beside this file), shared
 * by every test file of a vitest run: the first startSlurm() brings it up, the
 * others reuse it, and the run's global teardown (global-setup.ts) stops it
 * once no live vitest run uses it any more. A lock keeps workers and parallel
 * runs from starting or stopping it at the same time.
 */
export interface SlurmCluster {
  /** process.env plus SLURM_CONF: what Slurm commands and bridged processes run with */
  env: NodeJS.ProcessEnv
  /** ZP_SLURM_DIR: config, logs and state of the cluster */
  dir: string
  /**
   * Stops the cluster now, whoever uses it. For scripts (the bench); test
   * files leave it to the run's teardown, so the next file reuses it.
   */
  stop: () => Promise<void>
}

export const SLURM_SKIP = 'skipped: Slurm is not installed (apt-get install slurm-wlm slurmctld slurmd slurm-client munge slurmdbd mariadb-server)'
export const SLURM_NOT_ROOT = 'skipped: the Slurm test cluster needs root (slurmd starts jobs as their users; munge and MariaDB run as theirs)'
export const TEST_SLURM_DIR = '/tmp/zp-test-slurm'
/** set by global-setup.ts in the vitest main process (its pid), inherited by the workers */
export const RUN_ENV = 'ZPMESH_TEST_RUN'

const SCRIPT = fileURLToPath(new URL('./slurm-cluster.sh', import.meta.url))
const BINARIES = ['munged', 'mariadbd', 'mariadb-install-db', 'slurmdbd', 'slurmctld', 'slurmd', 'sinfo', 'sbatch', 'squeue', 'sacct', 'scancel']
/** the daemons live in sbin, which a user's PATH may lack */
const PATH = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin'].filter(d => d !== '').join(delimiter)
/** not the cluster slurm-cluster.sh makes by default, so a person's own one is left alone */
const SCRIPT_ENV = { ZP_SLURM_DIR: TEST_SLURM_DIR, ZP_SLURM_PORT: '16817', ZP_SLURM_DB_PORT: '13307', ZP_SLURM_CPUS: '4' }
const LOCK = `${TEST_SLURM_DIR}.lock`
/** the vitest runs using the cluster, one pid a line */
const RUNS = join(TEST_SLURM_DIR, 'zp-test-runs')
/** starting waits for another run's stop (scancel lets jobs drain up to 40 s), then up to 30 s for the node */
const LOCK_WAIT_MS = 180_000

const exec = promisify(execFile)

export async function startSlurm (): Promise<SlurmCluster | { skip: string }> {
  if (!await allInstalled()) return { skip: SLURM_SKIP }
  if (process.getuid?.() !== 0) return { skip: SLURM_NOT_ROOT }
  const run = process.env[RUN_ENV]
  await withLock(async () => {
    await script('up')
    if (run != null) {
      const runs = await readRuns()
      if (!runs.includes(run)) await writeFile(RUNS, [...runs, run].map(r => `${r}\n`).join(''))
    }
  })
  const env = await readFile(join(TEST_SLURM_DIR, 'env'), 'utf8')
  const conf = /SLURM_CONF=(\S+)/.exec(env)?.[1]
  if (conf == null) throw new Error(`${TEST_SLURM_DIR}/env names no SLURM_CONF: ${env}`)
  return {
    env: { ...process.env, PATH, SLURM_CONF: conf },
    dir: TEST_SLURM_DIR,
    stop: async () => { await withLock(async () => { await script('down') }) }
  }
}

/**
 * A vitest run is over: forgets it, and stops the cluster when it used it and
 * no other live run does.
 */
export async function releaseSlurm (run: string): Promise<void> {
  // only this run's own workers add it, and they are done: most runs never touch Slurm, and need not wait for the lock
  if (!(await readRuns()).includes(run)) return
  await withLock(async () => {
    const runs = await readRuns()
    if (!runs.includes(run)) return
    const others = runs.filter(r => r !== run && alive(Number(r)))
    if (others.length > 0) {
      await writeFile(RUNS, others.map(r => `${r}\n`).join(''))
    } else {
      await script('down')
    }
  })
}

async function script (command: 'up' | 'down'): Promise<void> {
  try {
    await exec('/bin/bash', [SCRIPT, command], { env: { ...process.env, PATH, ...SCRIPT_ENV }, timeout: LOCK_WAIT_MS / 2 })
  } catch (err) {
    const e = err as { stdout?: string, stderr?: string, message: string }
    throw new Error(`slurm-cluster.sh ${command} failed: ${e.stderr?.trim() ?? ''} ${e.stdout?.trim() ?? e.message} (logs in ${TEST_SLURM_DIR}/log)`)
  }
}

async function readRuns (): Promise<string[]> {
  const text = await readFile(RUNS, 'utf8').catch(() => '')
  return text.split('\n').filter(l => l !== '')
}

async function allInstalled (): Promise<boolean> {
  const dirs = PATH.split(delimiter)
  for (const binary of BINARIES) {
    const found = await Promise.all(dirs.map(async d => await access(join(d, binary), constants.X_OK).then(() => true, () => false)))
    if (!found.includes(true)) return false
  }
  return true
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A lock directory holding its owner's pid; an owner that died leaves a lock the next one takes over. */
async function withLock<T> (fn: () => Promise<T>): Promise<T> {
  const until = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      await mkdir(LOCK)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const owner = Number(await readFile(join(LOCK, 'pid'), 'utf8').catch(() => ''))
      // no pid yet: its owner is between mkdir and writeFile, unless it died there
      if (owner > 0 && !alive(owner)) await rm(LOCK, { recursive: true, force: true })
      if (Date.now() > until) throw new Error(`the Slurm test cluster's lock ${LOCK} is still held by pid ${owner || '?'} after ${LOCK_WAIT_MS / 1000} s; remove it if that process is gone`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }
  try {
    await writeFile(join(LOCK, 'pid'), String(process.pid))
    return await fn()
  } finally {
    await rm(LOCK, { recursive: true, force: true })
  }
}
