import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DaskDriver, DaskError } from '../../bootstrap/dask/client.ts'
import { tempDir } from '../helpers.ts'

const exec = promisify(execFile)
const SCRIPT = fileURLToPath(new URL('./dask-cluster.sh', import.meta.url))
export const DASK_SKIP = 'skipped: Dask is not installed (apt-get install python3-distributed)'

export interface DaskCluster {
  /** tcp://127.0.0.1:PORT */
  address: string
  /** the Python the cluster runs */
  python: string
  /** the workers' TMPDIR: what they put under tempfile.gettempdir() (the bridge's datadirs) lands here */
  tmpDir: string
  /** worker name → pid of the process running its tasks (under a nanny, not the nanny) */
  workerPids: () => Promise<Record<string, number>>
  /** stops exactly the processes it started and removes its directory; safe to call twice */
  stop: () => Promise<void>
}

const WORKER_PIDS = `
import json, os, sys
from distributed import Client
with Client(sys.argv[1], timeout=10) as c:
    names = {a: str(w["name"]) for a, w in c.scheduler_info()["workers"].items()}
    print(json.dumps({names[a]: pid for a, pid in c.run(os.getpid).items() if a in names}))
`

/**
 * A Dask scheduler on a free loopback port and `workers` named workers
 * (zpw-0…), with nannies unless `nanny: false`; or why it cannot run here.
 */
export async function startDask (opts: { workers: number, nanny?: boolean }): Promise<DaskCluster | { skip: string }> {
  let python: string
  try {
    python = await DaskDriver.findPython()
  } catch (err) {
    if (err instanceof DaskError && err.code === 'no-python') return { skip: DASK_SKIP }
    throw err
  }
  const dir = await tempDir('zp-dask-')
  const env = { ...process.env, ZP_DASK_PYTHON: python, ZP_DASK_WORKERS: String(opts.workers), ZP_DASK_NANNY: opts.nanny === false ? '0' : '1' }
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await exec(SCRIPT, ['down', dir.path], { timeout: 60_000 })
  }
  try {
    const { stdout } = await exec(SCRIPT, ['up', dir.path], { env, timeout: 120_000 })
    const address = stdout.trim().split('\n').at(-1) ?? ''
    return {
      address,
      python,
      tmpDir: join(dir.path, 'tmp'),
      workerPids: async () => JSON.parse((await exec(python, ['-c', WORKER_PIDS, address], { timeout: 30_000 })).stdout) as Record<string, number>,
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}
