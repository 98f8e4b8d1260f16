import type { SlurmUp } from '../../protocols/bridge/schema.ts'
import type { JoinCommand } from '../bridge/engine.ts'

/**
 * The batch scripts and sbatch options the Slurm bridges submit. Pure: every
 * value is already validated (protocols/bridge/schema.ts); here it is only
 * placed, as an sbatch argument (execFile, no shell) or quoted into the body.
 */

export interface SbatchSubmission {
  /** the batch script's text (bash) */
  script: string
  /** sbatch options, each one argument, to go before the script's path */
  args: string[]
}

/**
 * What the bridge asked for (`zp bridge slurm up`, a campaign's burst) and the
 * node command the bridge engine is given (argv: absolute Node ≥22 and
 * zp-node.mjs, since the `node` on a compute node's PATH may be too old;
 * idleMs, when set, becomes --exit-when-idle; drainMs, --drain-timeout-ms:
 * keep it below the cluster's KillWait).
 */
export type AttachedScriptOptions = SlurmUp & JoinCommand & {
  /** sbatch --job-name; each node is named <jobName>-<job>-<task> (unique across allocations) */
  jobName: string
  /** where each task's output goes (<logDir>/<job>_<task>.out) */
  logDir: string
}

export interface DetachedScriptOptions {
  /** absolute path of Node ≥22, absolute path of node/bin/zp-node.mjs */
  nodeArgv: string[]
  /** the folder run-shard reads (on the shared dir) */
  manifestDir: string
  /** array task ids, relative to `base`: `0-99`, `3,7,12-15` */
  arrayRanges: string
  /** shard index of task 0: Slurm caps task ids (MaxArraySize, 1001 by default), so indices go in relative to a base */
  base: number
  /** array tasks running at once (--array=…%M) */
  arrayLimit?: number
  jobName: string
  /** where each task's stdout and stderr go (<logDir>/<job>_<task>.out, .err) */
  logDir: string
  partition?: string
  time?: string
  sbatchArgs?: string[]
  /** run-shard --exec-config: the exec templates an exec campaign may run */
  execConfig?: string
}

/** One word for bash, whatever it holds: single-quoted, with each `'` written as `'\''`. */
export function shellQuote (value: string): string {
  if (value.includes('\0')) throw new TypeError('a shell word cannot hold a NUL byte')
  return `'${value.replaceAll("'", "'\\''")}'`
}

/** sbatch expands %A, %a … in file names; a `%` of the folder's own stays one */
function outputPattern (dir: string, suffix: string): string {
  return `${dir.replaceAll('%', '%%').replace(/\/+$/, '')}/%A_%a.${suffix}`
}

/** partition, time, extra options: the part both kinds of job share */
function placement (o: { partition?: string, time?: string, sbatchArgs?: string[] }): string[] {
  return [
    ...(o.partition != null ? [`--partition=${o.partition}`] : []),
    ...(o.time != null ? [`--time=${o.time}`] : []),
    // last, so an explicit option overrides the ones above
    ...(o.sbatchArgs ?? [])
  ]
}

/**
 * One array task per mesh node: each runs `zp-node join` on node-local
 * scratch, labelled with the job, and stays until the node has drained.
 */
export function attachedScript (o: AttachedScriptOptions): SbatchSubmission {
  const args = [
    `--array=0-${o.nodes - 1}`,
    `--job-name=${o.jobName}`,
    `--output=${outputPattern(o.logDir, 'out')}`,
    ...(o.gres != null ? [`--gres=${o.gres}`] : []),
    ...(o.cpusPerTask != null ? [`--cpus-per-task=${o.cpusPerTask}`] : []),
    ...(o.mem != null ? [`--mem=${o.mem}`] : []),
    ...placement(o)
  ]
  const node = [
    ...o.argv.map(shellQuote),
    'join',
    ...o.bootstrap.map(shellQuote),
    '--name', `${shellQuote(o.jobName)}-"$SLURM_ARRAY_JOB_ID-$SLURM_ARRAY_TASK_ID"`,
    '--data-dir', '"$data_dir"',
    '--listen', '/ip4/0.0.0.0/tcp/0',
    '--no-api',
    '--no-resume',
    '--label', 'bridge=slurm',
    '--label', '"slurm.job=$SLURM_ARRAY_JOB_ID"',
    '--label', '"zp.bridge=slurm-$SLURM_ARRAY_JOB_ID"',
    ...(o.idleMs != null ? ['--exit-when-idle', String(o.idleMs)] : []),
    ...(o.pskFile != null ? ['--psk', shellQuote(o.pskFile)] : []),
    ...(o.cpusPerTask != null ? ['--slots', '"$SLURM_CPUS_PER_TASK"'] : []),
    '--drain-timeout-ms', String(o.drainMs)
  ]
  const script = `#!/bin/bash
# A mesh node for one task of this array (written by the zp Slurm bridge).
set -u
data_dir="\${SLURM_TMPDIR:-/tmp}/zp-\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"
trap 'rm -rf -- "$data_dir"' EXIT
# scancel and the time limit send SIGTERM to every process of the job, SIGKILL
# only after KillWait: the node drains on its own SIGTERM, and this shell must
# not end (ending the job) before the node has.
trap 'echo "zp: Slurm is ending the job; waiting for the node to drain" >&2' TERM
${node.join(' ')} &
node=$!
# a trapped signal interrupts wait: wait again while the node runs
while kill -0 "$node" 2>/dev/null; do wait "$node"; done
wait "$node"
exit $?
`
  return { script, args }
}

/** One array task per shard index (base + task id), each running run-shard without the mesh. */
export function detachedScript (o: DetachedScriptOptions): SbatchSubmission {
  // the one value that goes into the body unquoted (inside $((…)))
  if (!Number.isSafeInteger(o.base) || o.base < 0) throw new RangeError(`base must be a shard index, got ${o.base}`)
  const limit = o.arrayLimit != null ? `%${o.arrayLimit}` : ''
  const args = [
    `--array=${o.arrayRanges}${limit}`,
    `--job-name=${o.jobName}`,
    `--output=${outputPattern(o.logDir, 'out')}`,
    `--error=${outputPattern(o.logDir, 'err')}`,
    ...placement(o)
  ]
  const command = [
    'exec',
    ...o.nodeArgv.map(shellQuote),
    'run-shard',
    '--manifest', shellQuote(o.manifestDir),
    '--index', `"$((${o.base} + SLURM_ARRAY_TASK_ID))"`,
    ...(o.execConfig != null ? ['--exec-config', shellQuote(o.execConfig)] : [])
  ]
  const script = `#!/bin/bash
# One shard of a detached campaign (written by the zp Slurm executor).
set -u
${command.join(' ')}
`
  return { script, args }
}

/** An sbatch --time for a duration: whole minutes, rounded up, at least one (0 would mean no limit). */
export function toSlurmTime (ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`a duration in milliseconds, got ${ms}`)
  const total = Math.max(1, Math.ceil(ms / 60_000))
  const days = Math.floor(total / 1440)
  const hours = Math.floor((total % 1440) / 60)
  const minutes = String(total % 60).padStart(2, '0')
  return days > 0 ? `${days}-${String(hours).padStart(2, '0')}:${minutes}:00` : `${hours}:${minutes}:00`
}
