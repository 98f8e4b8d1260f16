import { resolve } from 'node:path'
import Table from 'cli-table3'
import type { Command } from 'commander'
import type { Allocation, DaskUp, K8sUp, RayUp, SlurmUp } from '../../protocols/bridge/schema.ts'
import type { ApiClient } from '../api/client.ts'
import type { BridgeUpBody } from '../api/bridge-routes.ts'
import { collect, durationFlag, positiveInt, positiveNumber, UsageError } from './errors.ts'
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

/** `--resources '{"accelerator_type:A100": 1}'`: a JSON object of numbers */
function resourcesFlag (value: string): Record<string, number> {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    parsed = undefined
  }
  if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed) || !Object.values(parsed).every(v => typeof v === 'number' && v >= 0)) {
    throw new UsageError(`--resources takes a JSON object of Ray resource amounts, e.g. '{"accelerator_type:A100": 1}', got '${value}'`)
  }
  return parsed as Record<string, number>
}

/** `--node-selector KEY=VALUE`, repeatable */
function selectorFlag (value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=')
  if (eq <= 0) throw new UsageError(`--node-selector takes KEY=VALUE, e.g. --node-selector nvidia.com/gpu.present=true, got '${value}'`)
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) }
}

/** The allocation in a line a script can take the id from (the first word). */
function upLine (a: Allocation): string {
  const campaign = a.campaignId != null ? ` for ${a.campaignId}` : ''
  return `${a.id}\t${a.engine} allocation of ${a.requested} node${a.requested === 1 ? '' : 's'}${campaign} submitted (engine id ${a.engineId}); 'zp bridge list' follows it, 'zp bridge down ${a.id}' releases it\n`
}

export function renderBridgeTable (allocs: Allocation[], now = Date.now()): string {
  if (allocs.length === 0) return 'no bridge allocations on this node (zp bridge slurm|dask|ray|k8s up)'
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

/** `zp bridge slurm|dask|ray|k8s up`, `list`, `down`. */
export function bridgeCommands (program: Command, targetOptions: (cmd: Command) => Command, client: (flags: object) => Promise<ApiClient>): void {
  const bridge = program.command('bridge').description('start mesh nodes on Slurm, Dask, Ray or Kubernetes capacity, list and release them')
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

  const ray = bridge.command('ray').description('Ray: one job (Jobs REST API) whose launcher runs a zp-node join in each of N Ray tasks')
  upOptions(ray.command('up').description('submit a Ray job of N mesh nodes (labels bridge=ray, ray.job=ID); prints the allocation id'))
    .requiredOption('--address <url>', 'the Ray dashboard, e.g. http://10.0.0.5:8265')
    .requiredOption('--nodes <n>', 'Ray tasks, one mesh node each', positiveInt('--nodes'))
    .option('--num-cpus <c>', 'CPUs each task asks Ray for (the node offers as many work slots; default 1)', positiveNumber('--num-cpus'))
    .option('--num-gpus <g>', 'GPUs each task asks Ray for', positiveNumber('--num-gpus'))
    .option('--resources <json>', 'custom Ray resources each task asks for, e.g. \'{"accelerator_type:A100": 1}\'', resourcesFlag)
    .option('--python <path>', 'the Python on the Ray head that runs the launcher (default python3)')
    .option('--idle <duration>', 'a node with no work this long drains and exits, freeing its task (default 2m; 0: never)', durationFlag('--idle'))
    .action(async (flags: UpFlags & { address: string, nodes: number, numCpus?: number, numGpus?: number, resources?: Record<string, number>, python?: string }) => {
      const options: RayUp = {
        address: flags.address,
        nodes: flags.nodes,
        ...(flags.numCpus != null ? { numCpus: flags.numCpus } : {}),
        ...(flags.numGpus != null ? { numGpus: flags.numGpus } : {}),
        ...(flags.resources != null ? { resources: flags.resources } : {}),
        ...(flags.python != null ? { python: flags.python } : {}),
        ...common(flags)
      }
      await up(flags, { engine: 'ray', options, ...(flags.bootstrap != null ? { bootstrap: flags.bootstrap } : {}) })
    })

  const k8s = bridge.command('k8s').description('Kubernetes: one Indexed Job whose pods each run a zp-node join (EKS, GKE, AKS, on-premises)')
  upOptions(k8s.command('up').description('create an Indexed Job of N mesh nodes (labels bridge=k8s, k8s.job=NAME); prints the allocation id'))
    .requiredOption('--nodes <n>', 'Job indexes, one pod and mesh node each', positiveInt('--nodes'))
    .requiredOption('--image <image>', 'a container image with zp-node on its PATH (deploy/container/Containerfile)')
    .option('--namespace <ns>', 'namespace (default: the kubeconfig context\'s, else default)')
    .option('--gpus <k>', 'GPUs per pod (requests and limits)', positiveInt('--gpus'))
    .option('--gpu-resource <name>', 'the resource GPUs are asked for as (default nvidia.com/gpu)')
    .option('--cpu <q>', 'CPU per pod, e.g. 2 or 500m (the node offers as many work slots)')
    .option('--memory <q>', 'memory per pod, e.g. 4Gi')
    .option('--kubeconfig <file>', 'kubeconfig the node uses (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'kubeconfig context (default: its current-context)')
    .option('--image-pull-policy <p>', 'Always, IfNotPresent or Never')
    .option('--node-selector <k=v>', 'schedule only on nodes with this label, repeatable', selectorFlag)
    .option('--service-account <name>', 'the pods\' service account')
    .option('--idle <duration>', 'a node with no work this long drains and exits, completing its index (default 2m; 0: never)', durationFlag('--idle'))
    .action(async (flags: UpFlags & { nodes: number, image: string, namespace?: string, gpus?: number, gpuResource?: string, cpu?: string, memory?: string, kubeconfig?: string, context?: string, imagePullPolicy?: string, nodeSelector?: Record<string, string>, serviceAccount?: string }) => {
      const options = {
        nodes: flags.nodes,
        image: flags.image,
        ...(flags.namespace != null ? { namespace: flags.namespace } : {}),
        ...(flags.gpus != null ? { gpus: flags.gpus } : {}),
        ...(flags.gpuResource != null ? { gpuResource: flags.gpuResource } : {}),
        ...(flags.cpu != null ? { cpu: flags.cpu } : {}),
        ...(flags.memory != null ? { memory: flags.memory } : {}),
        ...(flags.kubeconfig != null ? { kubeconfig: resolve(flags.kubeconfig) } : {}),
        ...(flags.context != null ? { context: flags.context } : {}),
        ...(flags.imagePullPolicy != null ? { imagePullPolicy: flags.imagePullPolicy } : {}),
        ...(flags.nodeSelector != null ? { nodeSelector: flags.nodeSelector } : {}),
        ...(flags.serviceAccount != null ? { serviceAccount: flags.serviceAccount } : {}),
        ...common(flags)
      } as K8sUp
      // the node checks every value (a 400 names the field)
      await up(flags, { engine: 'k8s', options, ...(flags.bootstrap != null ? { bootstrap: flags.bootstrap } : {}) })
    })

  targetOptions(bridge.command('list').description('every bridge allocation of this node: engine state, nodes, the mesh peers they became'))
    .option('--json', 'print JSON: an array of allocations')
    .action(async (flags: { json?: boolean }) => {
      const allocs = await (await client(flags)).get<Allocation[]>('/v1/bridges', { timeoutMs: CALL_TIMEOUT_MS })
      process.stdout.write(flags.json === true ? JSON.stringify(allocs, null, 2) + '\n' : renderBridgeTable(allocs) + '\n')
    })

  targetOptions(bridge.command('down').argument('<id>', 'allocation id (zp bridge list)').description('release an allocation (scancel, the Dask plugin unregistered, the Ray job stopped, the Job deleted); its nodes drain and leave'))
    .option('--json', 'print the allocation as JSON')
    .action(async (id: string, flags: { json?: boolean }) => {
      const alloc = await (await client(flags)).request<Allocation>('DELETE', `/v1/bridges/${encodeURIComponent(id)}`, { timeoutMs: CALL_TIMEOUT_MS })
      process.stdout.write(flags.json === true ? JSON.stringify(alloc, null, 2) + '\n' : `${alloc.id}\treleased (${alloc.engine} ${alloc.engineId}); nothing of it runs any more\n`)
    })
}
