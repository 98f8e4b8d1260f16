import { resolve } from 'node:path'
import Table from 'cli-table3'
import type { Command } from 'commander'
import type { Allocation, DaskUp, SlurmUp } from '../../protocols/bridge/schema.ts'
import type { ApiClient } from '../api/client.ts'
import type { BridgeUpBody } from '../api/bridge-routes.ts'
import { collect, durationFlag, positiveInt } from './errors.ts'
import { ago } from './format.ts'

/** bridge calls wait for the engine (sbatch, the Dask driver, scancel and the nodes' drain) */
const CALL_TIMEOUT_MS = 150_000

interface UpFlags {
  bootstrap?: string[]
  psk?: string
  idle?: number
  json?: boolean
}

function common (flags: UpFlags): { pskFile?: string, idleMs?: number } {
  return { ...(flags.psk != null ? { pskFile: resolve(flags.psk) } : {}), ...(flags.idle != null ? { idleMs: flags.idle } : {}) }
}

/** The allocation in a line a script can take the id from (the first word). */
function upLine (a: Allocation): string {
  const campaign = a.campaignId != null ? ` for ${a.campaignId}` : ''
  return `${a.id}\t${a.engine} allocation of ${a.requested} node${a.requested === 1 ? '' : 's'}${campaign} submitted (engine id ${a.engineId}); 'zp bridge list' follows it, 'zp bridge down ${a.id}' releases it\n`
}

export function renderBridgeTable (allocs: Allocation[], now = Date.now()): string {
  if (allocs.length === 0) return 'no bridge allocations on this node (zp bridge slurm up / zp bridge dask up)'
  const table = new Table({
    head: ['ID', 'ENGINE', 'STATE', 'NODES', 'PEERS', 'CAMPAIGN', 'CREATED', 'REASON'],
    style: { head: [], border: [], compact: true },
    wordWrap: true,
    colWidths: [null, null, null, null, null, null, null, 48] as unknown as number[]
  })
  for (const a of allocs) {
    table.push([a.id, a.engine, a.state, `${a.running}/${a.requested}`, String(a.peers.length), a.campaignId ?? '-', ago(a.createdAt, now), a.reason ?? ''])
  }
  return table.toString()
}

/** `zp bridge slurm up | dask up | list | down`. */
export function bridgeCommands (program: Command, targetOptions: (cmd: Command) => Command, client: (flags: object) => Promise<ApiClient>): void {
  const bridge = program.command('bridge').description('start mesh nodes on Slurm or Dask capacity, list and release them')
  const up = async (flags: UpFlags, body: BridgeUpBody): Promise<void> => {
    const alloc = await (await client(flags)).request<Allocation>('POST', '/v1/bridges', { body, timeoutMs: CALL_TIMEOUT_MS })
    process.stdout.write(flags.json === true ? JSON.stringify(alloc, null, 2) + '\n' : upLine(alloc))
  }
  const upOptions = (cmd: Command): Command => targetOptions(cmd)
    .option('--bootstrap <addr>', 'mesh address the new nodes join through, repeatable (default: this node\'s announced addresses)', collect)
    .option('--psk <file>', 'pre-shared key file at the same path where the nodes run (default: this node\'s)')
    .option('--json', 'print the allocation as JSON')

  const slurm = bridge.command('slurm').description('Slurm: one sbatch array whose tasks each run a zp-node join')
  upOptions(slurm.command('up').description('submit an array of N mesh nodes (labels bridge=slurm, slurm.job=ID); prints the allocation id'))
    .requiredOption('--nodes <n>', 'array tasks, one mesh node each', positiveInt('--nodes'))
    .option('--partition <p>', 'Slurm partition (default: the cluster\'s default)')
    .option('--time <t>', 'time limit per task, as sbatch --time (e.g. 60, 2:00:00)')
    .option('--gres <g>', 'generic resources per task, e.g. gpu:1')
    .option('--cpus-per-task <c>', 'CPUs per task (the node offers as many work slots)', positiveInt('--cpus-per-task'))
    .option('--mem <m>', 'memory per task, e.g. 4G')
    .option('--sbatch-arg <arg>', 'another sbatch option, repeatable (e.g. --sbatch-arg=--account=lab)', collect)
    .option('--idle <duration>', 'a node with no work this long drains and exits, freeing its task (default 2m; 0: never)', durationFlag('--idle'))
    .action(async (flags: UpFlags & { nodes: number, partition?: string, time?: string, gres?: string, cpusPerTask?: number, mem?: string, sbatchArg?: string[] }) => {
      const options: SlurmUp = {
        nodes: flags.nodes,
        ...(flags.partition != null ? { partition: flags.partition } : {}),
        ...(flags.time != null ? { time: flags.time } : {}),
        ...(flags.gres != null ? { gres: flags.gres } : {}),
        ...(flags.cpusPerTask != null ? { cpusPerTask: flags.cpusPerTask } : {}),
        ...(flags.mem != null ? { mem: flags.mem } : {}),
        ...(flags.sbatchArg != null ? { sbatchArgs: flags.sbatchArg } : {}),
        ...common(flags)
      }
      await up(flags, { engine: 'slurm', options, ...(flags.bootstrap != null ? { bootstrap: flags.bootstrap } : {}) })
    })

  const dask = bridge.command('dask').description('Dask: a WorkerPlugin runs a zp-node join on every Dask worker')
  upOptions(dask.command('up').description('start a mesh node on every current and future worker of a Dask cluster; prints the allocation id'))
    .requiredOption('--scheduler <addr>', 'the Dask scheduler, e.g. tcp://10.0.0.5:8786')
    .option('--per-worker <k>', 'work slots each node offers (default: the worker\'s threads)', positiveInt('--per-worker'))
    .option('--python <path>', 'the Python that can import distributed (default: python3, then /usr/bin/python3)')
    .option('--idle <duration>', 'a node with no work this long leaves (default: it stays as long as its worker)', durationFlag('--idle'))
    .action(async (flags: UpFlags & { scheduler: string, perWorker?: number, python?: string }) => {
      const options: DaskUp = {
        scheduler: flags.scheduler,
        ...(flags.perWorker != null ? { perWorker: flags.perWorker } : {}),
        ...(flags.python != null ? { python: flags.python } : {}),
        ...common(flags)
      }
      await up(flags, { engine: 'dask', options, ...(flags.bootstrap != null ? { bootstrap: flags.bootstrap } : {}) })
    })

  targetOptions(bridge.command('list').description('every bridge allocation of this node: engine state, nodes, the mesh peers they became'))
    .option('--json', 'print JSON: an array of allocations')
    .action(async (flags: { json?: boolean }) => {
      const allocs = await (await client(flags)).get<Allocation[]>('/v1/bridges', { timeoutMs: CALL_TIMEOUT_MS })
      process.stdout.write(flags.json === true ? JSON.stringify(allocs, null, 2) + '\n' : renderBridgeTable(allocs) + '\n')
    })

  targetOptions(bridge.command('down').argument('<id>', 'allocation id (zp bridge list)').description('release an allocation: scancel, or unregister the Dask plugin; its nodes drain and leave'))
    .option('--json', 'print the allocation as JSON')
    .action(async (id: string, flags: { json?: boolean }) => {
      const alloc = await (await client(flags)).request<Allocation>('DELETE', `/v1/bridges/${encodeURIComponent(id)}`, { timeoutMs: CALL_TIMEOUT_MS })
      process.stdout.write(flags.json === true ? JSON.stringify(alloc, null, 2) + '\n' : `${alloc.id}\treleased (${alloc.engine} ${alloc.engineId}); nothing of it runs any more\n`)
    })
}
