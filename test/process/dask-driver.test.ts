import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { DaskDriver, DaskError, daskView } from '../../bootstrap/dask/client.ts'
import { startDask, type DaskCluster } from '../clusters/dask.ts'
import { tempDir, waitFor } from '../helpers.ts'

/*
 * The Dask bridge's driver against a real scheduler and two real workers under
 * nannies (Debian's python3-distributed). The node each worker runs is a stand-in
 * that records how it was started, run by the pinned Node (`node` on PATH is too old).
 */
const STAND_IN = fileURLToPath(new URL('../fixtures/dask/stand-in-node.mjs', import.meta.url))

let cluster: DaskCluster | undefined
let skipReason = ''

beforeAll(async () => {
  const started = await startDask({ workers: 2 })
  if ('skip' in started) {
    skipReason = started.skip
    console.warn(skipReason)
  } else {
    cluster = started
  }
})

afterAll(async () => { await cluster?.stop() })

/** running, not a zombie nobody reaped yet */
function alive (pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)?.[0] !== 'Z'
  } catch {
    return false
  }
}

interface Started { pid: number, args: string[], env: string | null, child: number | null }

async function started (datadir: string, pid: number): Promise<Started> {
  return await waitFor(async () => {
    const s = JSON.parse(await readFile(join(datadir, 'started.json'), 'utf8')) as Started
    return s.pid === pid ? s : undefined
  }, { what: `node ${pid} to write ${datadir}/started.json` })
}

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('Dask bridge driver (real scheduler, workers under nannies)', () => {
  it('one node per worker with its placeholders filled in; a SIGKILLed worker takes its node along and the restarted worker brings it back on the same datadir; down leaves nothing', async ({ skip, onTestFailed }) => {
    const c = cluster ?? skip(skipReason)
    const { address, tmpDir } = c
    const driver = new DaskDriver({ python: c.python })
    const id = `dask-${randomBytes(4).toString('hex')}`
    // stopping the cluster tears the plugin down, but not a node that outlived its worker
    onTestFailed(async () => { await driver.down(address, id).catch(() => {}) })
    const datadir = (worker: string): string => join(tmpDir, `zp-dask-${id}`, worker)
    const argv = [process.execPath, STAND_IN, '{datadir}', '--name', '{worker}', '--slots', '{slots}', '--id', '{id}']

    const up = await driver.up({ scheduler: address, id, argv, env: { ZP_STAND_IN: 'from-env' }, perWorker: 3, drainS: 5 })
    expect(up.plugin).toBe(`zp-node-${id}`)
    expect(up.workers.map(w => w.name).sort()).toEqual(['zpw-0', 'zpw-1'])

    const info = await driver.info(address, id)
    expect(info.registered).toBe(true)
    expect(info.workers.map(w => w.name).sort()).toEqual(['zpw-0', 'zpw-1'])
    const nodes: Record<string, number> = {}
    for (const w of info.workers) {
      expect(w).toMatchObject({ alive: true, nthreads: 1, exitCode: null })
      nodes[w.name] = w.childPid!
      expect(alive(w.childPid!)).toBe(true)
      expect(await started(datadir(w.name), w.childPid!)).toEqual({ pid: w.childPid, args: [datadir(w.name), '--name', w.name, '--slots', '3', '--id', id], env: 'from-env', child: null })
    }
    expect(daskView(info)).toEqual({ state: 'RUNNING', requested: 2, running: 2 })

    // SIGKILL the process running zpw-0's tasks: no teardown runs, PDEATHSIG takes the node along
    const victim = (await c.workerPids())['zpw-0']!
    process.kill(victim, 'SIGKILL')
    await waitFor(() => !alive(nodes['zpw-0']!), { what: 'the killed worker\'s node to die with it' })
    const back = await waitFor(async () => {
      const w = (await driver.info(address, id)).workers.find(x => x.name === 'zpw-0')
      return w?.alive === true && w.childPid !== nodes['zpw-0'] ? w : undefined
    }, { timeoutMs: 60_000, what: 'the nanny to restart zpw-0 and the plugin to start a new node there' })
    expect((await c.workerPids())['zpw-0']).not.toBe(victim)
    expect((await started(datadir('zpw-0'), back.childPid!)).args[0]).toBe(datadir('zpw-0'))
    // the datadir survived: it lists both starts
    expect((await readFile(join(datadir('zpw-0'), 'pids'), 'utf8')).trim().split('\n').map(Number)).toEqual([nodes['zpw-0'], back.childPid])
    expect(alive(nodes['zpw-1']!)).toBe(true)

    expect(await driver.down(address, id)).toEqual({ stopped: 2 })
    for (const pid of [nodes['zpw-0']!, back.childPid!, nodes['zpw-1']!]) expect(alive(pid)).toBe(false)
    expect(existsSync(join(tmpDir, `zp-dask-${id}`))).toBe(false)
    const after = await driver.info(address, id)
    expect(after.registered).toBe(false)
    expect(daskView(after).state).toBe('ENDED')
    // a second down finds nothing to stop
    expect(await driver.down(address, id)).toEqual({ stopped: 0 })
  })

  it('down stops a node that ignores SIGTERM once its drain time is up, and what it started', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const driver = new DaskDriver({ python: c.python })
    const id = `dask-${randomBytes(4).toString('hex')}`
    await driver.up({ scheduler: c.address, id, argv: [process.execPath, STAND_IN, '{datadir}'], env: { ZP_STAND_IN_STUBBORN: '1' }, drainS: 1 })
    const info = await driver.info(c.address, id)
    const pids = (await Promise.all(info.workers.map(async w => await started(join(c.tmpDir, `zp-dask-${id}`, w.name), w.childPid!))))
      .flatMap(s => [s.pid, s.child!])
    expect(pids.every(alive)).toBe(true)
    expect(await driver.down(c.address, id)).toEqual({ stopped: 2 })
    expect(pids.filter(alive)).toEqual([])
  })

  it('a node that cannot start: a DaskError saying so, and no plugin left registered', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const driver = new DaskDriver({ python: c.python })
    const id = `dask-${randomBytes(4).toString('hex')}`
    const err = await driver.up({ scheduler: c.address, id, argv: ['/nonexistent/zp-node', 'join'] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DaskError)
    expect(err).toMatchObject({ code: 'node-failed', message: expect.stringContaining('/nonexistent/zp-node') })
    expect((await driver.info(c.address, id)).registered).toBe(false)
    expect(existsSync(join(c.tmpDir, `zp-dask-${id}`))).toBe(false)
  })

  it('check: the scheduler\'s worker count and Dask version', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const check = await new DaskDriver({ python: c.python }).check(c.address)
    expect(check.workers).toBe(2)
    expect(check.version).toMatch(/^\d{4}\.\d+\.\d+/)
  })

  it('an unreachable scheduler: a DaskError naming the address and what to check; the allocation shows FAILED', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const address = `tcp://127.0.0.1:${await closedPort()}`
    const err = await new DaskDriver({ python: c.python, timeoutMs: 6_000 }).info(address, 'dask-gone').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DaskError)
    expect(err).toMatchObject({ code: 'unreachable', message: expect.stringContaining(address) })
    expect((err as DaskError).message).toContain('is `dask scheduler` running there?')
    expect(daskView(err as DaskError)).toEqual({ state: 'FAILED', reason: (err as DaskError).message, requested: 0, running: 0 })
  })

  it('findPython: past a bogus --python to one that imports distributed', async ({ skip }) => {
    const c = cluster ?? skip(skipReason)
    const found = await DaskDriver.findPython('/nonexistent/python3')
    expect(found).toBe(c.python)
    await promisify(execFile)(found, ['-c', 'import distributed'])
  })

  it('findPython: when no Python can import distributed, says which were tried and what to do', async () => {
    const empty = await tempDir('zp-nopython-')
    // no python3 on PATH, and a Python home that stops /usr/bin/python3 from starting
    vi.stubEnv('PATH', empty.path)
    vi.stubEnv('PYTHONHOME', '/nonexistent')
    vi.stubEnv('ZP_DASK_PYTHON', '/nonexistent/venv/bin/python')
    try {
      const err = await DaskDriver.findPython('/nonexistent/python3').catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DaskError)
      expect(err).toMatchObject({ code: 'no-python' })
      expect((err as DaskError).message).toBe('no Python here can import distributed (tried /nonexistent/python3, /nonexistent/venv/bin/python, python3, /usr/bin/python3): pass --python PATH to the Python your Dask workers run, or install python3-distributed')
    } finally {
      vi.unstubAllEnvs()
      await empty.remove()
    }
  })
})
