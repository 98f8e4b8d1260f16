import type { RayUp } from '../../protocols/bridge/schema.ts'
import type { JoinCommand } from '../bridge/engine.ts'
import type { RaySubmitRequest } from './client.ts'

/**
 * The Ray job a bridge allocation is: pure, so tests check what would be
 * submitted. The launcher's source travels in the job's runtime_env, so the
 * head needs nothing of zp's checkout; only Node and zp-node, at the paths in
 * the node command.
 */

/** env vars the launcher reads (runtime_env env_vars reach the driver and every task) */
export const LAUNCHER_ENV = 'ZP_RAY_LAUNCHER'
export const CONFIG_ENV = 'ZP_RAY_CONFIG'
/** marks every process of an allocation (driver, tasks, nodes) with its id */
export const MARK_ENV = 'ZP_RAY_BRIDGE'
/** Ray's own: how long `ray job stop` waits after SIGTERM before SIGKILL */
export const STOP_WAIT_ENV = 'RAY_JOB_STOP_WAIT_TIME_S'
export const DEFAULT_STOP_WAIT_S = 3
/** what the launcher gives itself beyond the nodes' drain before Ray's SIGKILL */
const STOP_MARGIN_S = 10

/** What the launcher's tasks need (ZP_RAY_CONFIG). */
export interface LauncherConfig {
  bridge: string
  nodes: number
  /** the node command; {index} and {datadir} are filled in by each task */
  argv: string[]
  /** Ray task options: num_cpus, num_gpus, resources */
  task: { num_cpus: number, num_gpus?: number, resources?: Record<string, number> }
  /** seconds a node gets to drain when the job is stopped */
  drain_s: number
}

export function submissionId (allocationId: string): string {
  return `zp-${allocationId}`
}

/** Seconds Ray must give the launcher between its SIGTERM and SIGKILL for the nodes to drain. */
export function stopWaitS (drainMs: number): number {
  return Math.ceil(drainMs / 1000) + STOP_MARGIN_S
}

/** The zp-node command each Ray task runs, labelled with the job; ceil(numCpus) work slots. */
export function launcherConfig (options: RayUp, join: JoinCommand, id: string): LauncherConfig {
  const job = submissionId(id)
  const cpus = options.numCpus ?? 1
  const argv = [
    ...join.argv, 'join', ...join.bootstrap,
    '--name', `${id}-{index}`, '--data-dir', '{datadir}', '--listen', '/ip4/0.0.0.0/tcp/0',
    '--no-api', '--no-resume', '--slots', String(Math.ceil(cpus)),
    '--label', 'bridge=ray', '--label', `ray.job=${job}`, '--label', `zp.bridge=${id}`,
    '--drain-timeout-ms', String(join.drainMs),
    ...(join.pskFile != null ? ['--psk', join.pskFile] : []),
    ...(join.idleMs != null ? ['--exit-when-idle', String(join.idleMs)] : [])
  ]
  return {
    bridge: id,
    nodes: options.nodes,
    argv,
    task: {
      num_cpus: cpus,
      ...(options.numGpus != null ? { num_gpus: options.numGpus } : {}),
      ...(options.resources != null && Object.keys(options.resources).length > 0 ? { resources: options.resources } : {})
    },
    drain_s: Math.ceil(join.drainMs / 1000)
  }
}

/** POST /api/jobs/ for an allocation: the launcher as the entrypoint, its config and source in env_vars, the mesh in metadata. */
export function rayJobRequest (options: RayUp, join: JoinCommand, id: string, launcherSource: string): RaySubmitRequest {
  const mesh = join.bootstrap.map(a => /\/p2p\/([^/]+)$/.exec(a)?.[1]).find(p => p != null)
  return {
    entrypoint: `${options.python ?? 'python3'} -c "import os; exec(os.environ['${LAUNCHER_ENV}'])"`,
    submission_id: submissionId(id),
    runtime_env: {
      env_vars: {
        [LAUNCHER_ENV]: launcherSource,
        [CONFIG_ENV]: JSON.stringify(launcherConfig(options, join, id)),
        [MARK_ENV]: id,
        [STOP_WAIT_ENV]: String(stopWaitS(join.drainMs)),
        // Ray folds log lines that differ only in numbers ("node 0 started", "node 1 started"): the view counts them
        RAY_DEDUP_LOGS: '0'
      }
    },
    metadata: { 'zp.bridge': id, ...(mesh != null ? { 'zp.mesh': mesh } : {}) }
  }
}
