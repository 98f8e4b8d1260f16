import { z } from 'zod'

/**
 * Bridges: how capacity of another engine (a Slurm partition, a Dask
 * cluster) becomes mesh nodes, and how the mesh tells bridged nodes apart
 * (labels). Shared by the spec (burst, detached), the control API and the
 * bridge registry.
 */

/** `bridge`, `slurm.job`, `zp.bridge`: lower case, dots, dashes, underscores */
export const LABEL_KEY = /^[a-z0-9][a-z0-9._-]{0,62}$/
/** `slurm`, `1234`, `dask-3f9a2c`, `gpu:1` */
export const LABEL_VALUE = /^[A-Za-z0-9._:/-]{0,128}$/

export const LabelKeySchema = z.string().regex(LABEL_KEY, { message: 'label keys are lower case letters, digits, ".", "-" and "_" (at most 63), e.g. "bridge" or "slurm.job"' })
export const LabelValueSchema = z.string().regex(LABEL_VALUE, { message: 'label values are letters, digits, ".", "_", ":", "/" and "-" (at most 128)' })
export const LabelsSchema = z.record(LabelKeySchema, LabelValueSchema)
export type Labels = z.infer<typeof LabelsSchema>

/** Labels every bridged node carries: `bridge=<engine>`, `zp.bridge=<allocation id>`, plus the engine's own (`slurm.job`, `dask.worker`). */
export const BRIDGE_LABEL = 'bridge'
export const ALLOCATION_LABEL = 'zp.bridge'

export const ENGINES = ['slurm', 'dask', 'ray', 'k8s'] as const
export const EngineSchema = z.enum(ENGINES)
export type Engine = z.infer<typeof EngineSchema>

/** An sbatch --time value: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED */
const SlurmTime = z.string().regex(/^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+(:\d{2}(:\d{2})?)?|UNLIMITED|INFINITE)$/, { message: 'a Slurm time such as 30, 1:30:00 or 1-00:00:00' })
const NoNewline = z.string().min(1).max(1024).regex(/^[^\n\r\0]*$/, { message: 'no line breaks' })

/** `zp bridge slurm up`, and `burst: { slurm: … }` in a campaign */
export const SlurmUpSchema = z.object({
  nodes: z.number().int().min(1).max(10_000),
  partition: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { message: 'a partition name' }).optional(),
  time: SlurmTime.optional(),
  /** e.g. gpu:1 */
  gres: z.string().regex(/^[A-Za-z0-9_:,.-]{1,128}$/, { message: 'a generic resource such as gpu:1' }).optional(),
  cpusPerTask: z.number().int().min(1).max(4096).optional(),
  /** e.g. 4G */
  mem: z.string().regex(/^\d+[KMGT]?$/, { message: 'memory such as 4000 or 4G' }).optional(),
  /** more sbatch options, each one argument (e.g. --account=lab) */
  sbatchArgs: z.array(NoNewline).max(64).optional(),
  /** a bridged node drains and exits after this long without work (default 2 min) */
  idleMs: z.number().int().min(0).max(30 * 86_400_000).optional(),
  /** a pre-shared key file readable at the same path on the compute nodes */
  pskFile: z.string().min(1).max(4096).optional()
}).strict()
export type SlurmUp = z.infer<typeof SlurmUpSchema>

/** `zp bridge dask up`, and `burst: { dask: … }` in a campaign */
export const DaskUpSchema = z.object({
  /** tcp://HOST:8786 */
  scheduler: z.string().regex(/^(tcp|tls|ws|wss|inproc|ucx):\/\/\S+$/, { message: 'a Dask scheduler address such as tcp://10.0.0.5:8786' }),
  /** work slots each bridged node offers (default: the Dask worker's thread count) */
  perWorker: z.number().int().min(1).max(1024).optional(),
  idleMs: z.number().int().min(0).max(30 * 86_400_000).optional(),
  /** the Python that can import distributed (default: the first of python3, /usr/bin/python3 that can) */
  python: z.string().min(1).max(4096).optional(),
  pskFile: z.string().min(1).max(4096).optional()
}).strict()
export type DaskUp = z.infer<typeof DaskUpSchema>

const Idle = z.number().int().min(0).max(30 * 86_400_000).optional()
const PskFile = z.string().min(1).max(4096).optional()

/** `zp bridge ray up`, and `burst: { ray: … }` in a campaign: one Ray job whose tasks each run a zp-node join */
export const RayUpSchema = z.object({
  /** the Ray dashboard (Jobs REST API), http://HEAD:8265 */
  address: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, { message: 'the Ray dashboard address, such as http://10.0.0.5:8265' }),
  nodes: z.number().int().min(1).max(10_000),
  /** CPUs each node's Ray task asks for (it offers as many work slots; default 1) */
  numCpus: z.number().positive().max(4096).optional(),
  numGpus: z.number().nonnegative().max(64).optional(),
  /** custom Ray resources each task asks for, e.g. {"accelerator_type:A100": 1} */
  resources: z.record(z.string().min(1).max(128), z.number().nonnegative()).optional(),
  /** the Python on the Ray head that runs the launcher (default python3) */
  python: z.string().min(1).max(4096).regex(/^[^\s'"\\]+$/, { message: 'a path without spaces or quotes' }).optional(),
  idleMs: Idle,
  pskFile: PskFile
}).strict()
export type RayUp = z.infer<typeof RayUpSchema>

/** a Kubernetes resource quantity: 500m, 2, 4Gi, 1.5 */
const Quantity = z.string().regex(/^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/, { message: 'a Kubernetes quantity such as 500m, 2, 4Gi' })
const DnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, { message: 'a DNS label: lower case letters, digits and "-"' })

/** `zp bridge k8s up`, and `burst: { k8s: … }` in a campaign: one Indexed Job whose pods each run a zp-node join */
export const K8sUpSchema = z.object({
  nodes: z.number().int().min(1).max(10_000),
  /** a container image with zp-node on its PATH (deploy/container/Containerfile) */
  image: z.string().min(1).max(512).regex(/^[^\s]+$/, { message: 'an image reference such as ghcr.io/lab/zp-node:0.1.0' }),
  namespace: DnsLabel.optional(),
  /** GPUs per pod (requests = limits of the GPU resource) */
  gpus: z.number().int().min(0).max(64).optional(),
  /** the extended resource GPUs are asked for as (default nvidia.com/gpu; amd.com/gpu, gpu.intel.com/i915 …) */
  gpuResource: z.string().regex(/^[a-z0-9.-]+\/[a-z0-9._-]+$/, { message: 'an extended resource name such as nvidia.com/gpu' }).optional(),
  /** CPU per pod (request and limit; the node offers ceil(cpu) work slots) */
  cpu: Quantity.optional(),
  memory: Quantity.optional(),
  /** kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster service account) */
  kubeconfig: z.string().min(1).max(4096).optional(),
  context: z.string().min(1).max(253).optional(),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  nodeSelector: z.record(z.string().min(1).max(317), z.string().max(63)).optional(),
  serviceAccount: DnsLabel.optional(),
  idleMs: Idle,
  pskFile: PskFile
}).strict()
export type K8sUp = z.infer<typeof K8sUpSchema>

/** What `zp submit --prices` estimated a burst to cost, stamped into the spec so the node can hold it to maxCost. */
export const BurstEstimateSchema = z.object({
  cost: z.number().nonnegative(),
  /** ISO 4217 code or whatever the price table names (USD, EUR) */
  currency: z.string().min(1).max(8),
  coreHours: z.number().nonnegative(),
  gpuHours: z.number().nonnegative(),
  /** expected hours the burst runs */
  hours: z.number().nonnegative()
}).strict()
export type BurstEstimate = z.infer<typeof BurstEstimateSchema>

/** Capacity a campaign brings up when it starts and releases when it ends. */
export const BurstSchema = z.object({
  slurm: SlurmUpSchema.optional(),
  dask: DaskUpSchema.optional(),
  ray: RayUpSchema.optional(),
  k8s: K8sUpSchema.optional(),
  /** the most the burst may cost (in the price table's currency): a burst whose estimate exceeds it is not started */
  maxCost: z.number().positive().optional(),
  estimate: BurstEstimateSchema.optional()
}).strict()
export type Burst = z.infer<typeof BurstSchema>

/** Each engine's `up` options. */
export interface EngineOptions { slurm: SlurmUp, dask: DaskUp, ray: RayUp, k8s: K8sUp }
/** A bring-up request for one engine. */
export type EngineUp = { [E in Engine]: { engine: E, options: EngineOptions[E] } }[Engine]

/** `zp submit --on slurm`: shards run as Slurm array tasks that never talk to the mesh. */
export const DetachedSchema = z.object({
  engine: z.literal('slurm'),
  /** a folder the compute nodes and the coordinator's node share (manifest, blobs, shard files) */
  sharedDir: z.string().min(1).max(4096),
  /** array tasks running at once (sbatch --array=…%M) */
  arrayLimit: z.number().int().min(1).max(100_000).optional(),
  partition: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/).optional(),
  time: SlurmTime.optional(),
  sbatchArgs: z.array(NoNewline).max(64).optional()
}).strict()
export type Detached = z.infer<typeof DetachedSchema>

export const ALLOCATION_STATES = ['PENDING', 'RUNNING', 'ENDED', 'FAILED'] as const
export const AllocationStateSchema = z.enum(ALLOCATION_STATES)
export type AllocationState = z.infer<typeof AllocationStateSchema>

/** What an engine says of an allocation now. */
export interface EngineView {
  state: AllocationState
  /** the engine's reason (squeue %r, sacct state, scheduler unreachable …) */
  reason?: string
  /** nodes asked for (Slurm: array tasks; Dask: workers; Ray: tasks; Kubernetes: Job indexes) */
  requested: number
  /** of those, running now */
  running: number
}

/** A bridge allocation as the registry keeps it (LevelDB) and `zp bridge list --json` shows it. */
export const AllocationSchema = z.object({
  /** slurm-<job id>, dask-<random>, ray-<random>, k8s-<random> */
  id: z.string().regex(/^(slurm|dask|ray|k8s)-[A-Za-z0-9_-]{1,64}$/),
  engine: EngineSchema,
  /** the engine's own handle: the Slurm job id, the Dask plugin name, the Ray submission id, <namespace>/<Job name> */
  engineId: z.string().min(1).max(256),
  state: AllocationStateSchema,
  reason: z.string().max(2000).optional(),
  requested: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  /** peer ids of the mesh nodes it became (labelled zp.bridge=<id>) */
  peers: z.array(z.string()),
  /** the campaign that brought it up (burst), released when that campaign ends */
  campaignId: z.string().optional(),
  bootstrap: z.array(z.string()),
  options: z.union([SlurmUpSchema, DaskUpSchema, RayUpSchema, K8sUpSchema]),
  createdAt: z.number(),
  endedAt: z.number().optional()
})
export type Allocation = z.infer<typeof AllocationSchema>
