import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { coordinatorActor, COORDINATOR_ACTOR, type CoordinatorMessage } from '../../actors/coordinator/coordinator.ts'
import { CampaignStore } from '../../actors/coordinator/store.ts'
import type { CoordinatorMetrics } from '../../actors/coordinator/session.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { AuditVerdict } from '../../actors/coordinator/audit.ts'
import { describeError } from '../../actors/runtime/errors.ts'
import type { ActorHost } from '../../actors/runtime/host.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { createRunners, type Runners } from '../../actors/worker/runners/index.ts'
import type { ExecTemplates } from '../../actors/worker/runners/types.ts'
import { workerActor, WORKER_ACTOR, type WorkerMessage, type WorkerMetrics } from '../../actors/worker/worker.ts'
import { replicaActor, REPLICA_ACTOR } from '../../actors/replica/replica.ts'
import { detachedActor, DETACHED_ACTOR } from '../../bootstrap/slurm/detached.ts'
import type { NodeBridges } from '../bridges.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import { OFFER_TTL_MS, type BlobAccess } from '../blobs/access.ts'
import type { BlobGc } from '../blobs/gc.ts'
import { Intake } from '../blobs/intake.ts'
import type { BlobService } from '../blobs/service.ts'
import { burstRefusal } from '../../bootstrap/bridge/registry.ts'
import type { Storage } from '../storage.ts'
import type { ExportFormat } from './export.ts'
import { campaignReferences } from './blob-refs.ts'
import { CampaignLookup, type ResultsAnswer } from './lookup.ts'
import { CampaignFileError, loadCampaignFile, loadCampaignObject, resolveCampaign } from './load.ts'
import type { SummaryFormat } from '../../protocols/campaign/replica.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { CampaignApi, SubmitBody } from './routes.ts'


/** bringing a campaign's burst up (sbatch, the Dask driver) or releasing it (scancel and the nodes' drain) */
const BURST_CALL_TIMEOUT_MS = 300_000
/** how often a blob the worker keeps using gets its last-used time moved */
const TOUCH_EVERY_MS = 60_000

export interface CampaignServiceInit {
  self: string
  name: string
  version: string
  host: ActorHost
  storage: Storage
  runsDir: string
  log: Logger
  blobs: BlobService
  access: BlobAccess
  /** the blob store's collector: the campaigns here are among its references */
  gc: BlobGc
  slots: number
  execTemplates: ExecTemplates
  capabilities: () => CapabilityReport | null
  /** pick up campaigns this node was coordinating when it stopped (default true; zp-node --no-resume) */
  resume?: boolean
  peers: () => Promise<PeerView[]>
  setBusy: (busy: number) => void
  /** may this peer coordinate work on this node (its trust policy) */
  isTrusted: (peer: string) => boolean
  /** replicas of a campaign whose file does not say (default 2) */
  defaultReplicas?: number
  /** folders besides a campaign's own that its files may be in (zp-node --data-root) */
  dataRoots?: readonly string[]
  /** bridges: burst capacity follows its campaign; detached campaigns run as Slurm arrays */
  bridges?: NodeBridges
  /** the node's exec config file (detached exec campaigns hand it to run-shard) */
  execConfig?: string
  /** the node's Prometheus metrics: what its coordinator and worker count */
  metrics?: { coordinator: CoordinatorMetrics, worker: WorkerMetrics }
}

/**
 * Campaigns on a node: the coordinator of what is submitted here, the worker
 * that runs shards leased to this node, and the REST face of both.
 */
export class CampaignService implements CampaignApi {
  readonly #init: CampaignServiceInit
  readonly #store: CampaignStore
  /** this node's replicas of other coordinators' campaigns */
  readonly #copies: CampaignStore
  readonly #runners: Runners
  readonly #coordinator: { peer: string, name: string }
  readonly #worker: { peer: string, name: string }
  readonly #lookup: CampaignLookup

  constructor (init: CampaignServiceInit) {
    this.#init = init
    this.#store = new CampaignStore(init.storage)
    this.#copies = new CampaignStore(init.storage, 'replica-')
    this.#lookup = new CampaignLookup({
      self: init.self, host: init.host, store: this.#store, copies: this.#copies, peers: init.peers, blobs: init.blobs, access: init.access, log: init.log
    })
    this.#coordinator = { peer: init.self, name: COORDINATOR_ACTOR }
    this.#worker = { peer: init.self, name: WORKER_ACTOR }
    this.#runners = createRunners({ capabilities: init.capabilities, slots: init.slots, execTemplates: init.execTemplates, log: init.log.child({ component: 'runner' }) })
    const { blobs, access, gc } = init
    // a campaign's grants name its files, which its record keeps for the retention after it ended; other grants are offers
    const campaignScopes = new Set<string>()
    gc.addSource(campaignReferences([this.#store, this.#copies]))
    gc.addSource({ why: 'offered to a peer (a snapshot, a result, an export)', hashes: () => access.granted(scope => campaignScopes.has(scope)) })
    init.host.spawn(COORDINATOR_ACTOR, coordinatorActor({
      self: init.self,
      selfName: init.name,
      version: init.version,
      store: this.#store,
      runsDir: init.runsDir,
      peers: init.peers,
      defaultReplicas: init.defaultReplicas,
      resume: init.resume,
      metrics: init.metrics?.coordinator,
      ...(init.bridges != null ? { lifecycle: this.#bridgeLifecycle(init.bridges) } : {}),
      blobs: {
        grant: (scope, peer, hashes) => {
          campaignScopes.add(scope)
          access.grant(scope, peer, hashes)
        },
        revoke: (scope) => {
          campaignScopes.delete(scope)
          access.revoke(scope)
        },
        path: (hash) => blobs.store.path(hash),
        fetch: async (peer, ref, signal) => await readFile(await blobs.fetch(peer, { hash: ref.hash, size: ref.size, name: ref.name }, { signal })),
        offer: async (peer, bytes, name) => {
          const ref = await blobs.store.putBytes(bytes, name)
          access.grant(`replica:${ref.hash}`, peer, [ref.hash], OFFER_TTL_MS)
          return ref
        }
      }
    }))
    if (init.bridges != null) {
      const bridges = init.bridges
      init.host.spawn(DETACHED_ACTOR, detachedActor({
        self: init.self,
        spec: async (id) => (await this.#store.campaign(id))?.spec,
        blobPath: (hash) => blobs.store.path(hash),
        slurm: () => bridges.slurm(),
        nodeArgv: bridges.argv,
        ...(init.execConfig != null ? { execConfig: init.execConfig } : {})
      }))
    }
    init.host.spawn(REPLICA_ACTOR, replicaActor({
      self: init.self,
      storage: init.storage,
      copies: this.#copies,
      main: this.#store,
      runsDir: init.runsDir,
      isTrusted: init.isTrusted,
      peerState: async () => new Map((await init.peers()).map(p => [p.peerId, p.state])),
      blobs: {
        fetch: async (peer, ref, signal) => await blobs.fetch(peer, { hash: ref.hash, size: ref.size, name: ref.name }, { signal }),
        read: async (path) => await readFile(path)
      },
      localStatus: async (id) => await this.#init.host.ask<CampaignStatus | null>(this.#coordinator, { type: 'status', id } satisfies CoordinatorMessage),
      exportFor: async (peer, id, format) => await this.#lookup.exportFor(peer, id, format),
      summaryFor: async (id, format) => await this.#lookup.summaryFor(id, format),
      auditFor: async (peer, id) => await this.#lookup.auditFor(peer, id),
      takeover: async (msg) => { await init.host.tell(this.#coordinator, { type: 'takeover', ...msg } satisfies CoordinatorMessage) }
    }))
    // blobs are named by their hash, so a path found once stays good until the store removes the blob: no file
    // system call per shard (the last-used time is moved once a minute, which is all the retention needs)
    const ready = new ReadyPaths(blobs.store)
    // the blobs the worker used since it was last idle: held from the collector, as a running shard may read any of them
    const inUse = new Map<string, () => void>()
    const use = (hash: string): void => { if (!inUse.has(hash)) inUse.set(hash, gc.hold([hash])) }
    init.host.spawn(WORKER_ACTOR, workerActor({
      slots: init.slots,
      runners: this.#runners,
      setBusy: (busy) => {
        init.setBusy(busy)
        if (busy > 0) return
        for (const release of inUse.values()) release()
        inUse.clear()
      },
      isTrusted: init.isTrusted,
      metrics: init.metrics?.worker,
      blobs: {
        fetch: async (from, ref, signal) => {
          use(ref.hash)
          const known = ready.path(ref.hash)
          if (known != null) return known
          await blobs.fetch(from, { hash: ref.hash, size: ref.size, name: ref.name }, { signal })
          await blobs.store.touch(ref.hash)
          // modules are import()ed: they need a name ending in .mjs
          return ready.add(ref.hash, ref.name.endsWith('.mjs') || ref.name.endsWith('.js') ? await blobs.store.importablePath(ref.hash) : blobs.store.path(ref.hash))
        },
        fetchSlice: async (from, ref, range, signal) => {
          use(ref.hash)
          // the whole data set is here (this node coordinates, or fetched it before): read the range in place
          const whole = ready.path(ref.hash)
          if (whole != null) return { path: whole, start: range.start, end: range.end }
          if (await blobs.store.has(ref.hash)) {
            await blobs.store.touch(ref.hash)
            return { path: ready.add(ref.hash, blobs.store.path(ref.hash)), start: range.start, end: range.end }
          }
          use(range.hash)
          const path = await blobs.fetch(from, { hash: ref.hash, range, name: `${ref.name}[${range.start},${range.end})` }, { signal })
          await blobs.store.touch(range.hash)
          return { path, start: 0, end: range.end - range.start }
        },
        offer: async (peer, bytes, name) => {
          const ref = await blobs.store.putBytes(bytes, name)
          access.grant(`result:${ref.hash}`, peer, [ref.hash], OFFER_TTL_MS)
          return ref
        }
      }
    }))
  }

  /** Burst capacity comes up when its campaign starts and goes when it ends; a detached campaign's Slurm arrays and shared dir go with it. */
  #bridgeLifecycle (bridges: NodeBridges): { started: (id: string, spec: CampaignSpec) => void, ended: (id: string) => void } {
    // each call its own deadline: a signal made once here would abort every burst a day after the node started
    return {
      started: (id, spec) => { void bridges.registry.campaignStarted(id, spec.burst, AbortSignal.timeout(BURST_CALL_TIMEOUT_MS)) },
      ended: (id) => {
        void bridges.registry.campaignEnded(id, AbortSignal.timeout(BURST_CALL_TIMEOUT_MS))
        void this.#init.host.tell({ peer: this.#init.self, name: DETACHED_ACTOR }, { type: 'ended', campaignId: id }).catch(() => {})
      }
    }
  }

  async submit (body: SubmitBody): Promise<CampaignStatus> {
    // what this submit stores is held until the campaign's record names it; refused, it leaves nothing of its own
    const store = new Intake(this.#init.blobs.store, this.#init.gc)
    try {
      const loaded = 'file' in body
        ? await loadCampaignFile(body.file, { store, dataRoots: this.#init.dataRoots, params: body.params })
        : await loadCampaignObject(body.spec, body.baseDir, {}, 'campaign', { store, dataRoots: this.#init.dataRoots, params: body.params })
      const spec = await this.#withBridges(await resolveCampaign(loaded, async (path, name) => await store.putFile(path, name)), body)
      const specHash = sha256(new TextEncoder().encode(JSON.stringify(spec)))
      const id = `c-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
      return await this.#init.host.ask<CampaignStatus>(this.#coordinator, {
        type: 'submit', id, spec, specHash, offsets: loaded.data?.offsets, sliceHashes: loaded.data?.sliceHashes
      } satisfies CoordinatorMessage, { timeoutMs: 60_000 })
    } catch (err) {
      const freed = await store.discard().catch((cleanup: unknown) => {
        this.#init.log.warn({ err: describeError(cleanup) }, 'cannot remove the blobs a refused submit stored; the blob gc will')
      })
      if (freed != null && freed.blobs > 0) this.#init.log.info({ blobs: freed.blobs, bytes: freed.bytes }, 'removed the blobs a refused submit stored')
      throw err
    } finally {
      store.release()
    }
  }

  /** `zp submit --burst slurm:4` adds to the file's burst; `--on slurm` makes it detached (checked here: nothing is stored if Slurm or the shared dir is not usable). */
  async #withBridges (spec: CampaignSpec, body: SubmitBody): Promise<CampaignSpec> {
    if (body.burst == null && body.detached == null) {
      // a file's burst with a maxCost and nothing estimated: refused now, not silently skipped when it starts
      const refused = spec.burst != null ? burstRefusal(spec.burst) : undefined
      if (refused != null) throw new CampaignFileError(`the campaign's burst: ${refused}`)
      return spec
    }
    const bridges = this.#init.bridges
    if (bridges == null) throw new CampaignFileError('this node runs without bridges; burst and --on slurm need a node started by zp-node')
    let out = spec
    if (body.burst != null) out = { ...out, burst: { ...out.burst, ...body.burst } }
    const refused = out.burst != null ? burstRefusal(out.burst) : undefined
    if (refused != null) throw new CampaignFileError(`the campaign's burst: ${refused}`)
    if (body.detached != null) {
      const detached = { ...body.detached, sharedDir: body.detached.sharedDir ?? bridges.defaultSharedDir }
      await bridges.checkDetached(detached, AbortSignal.timeout(30_000))
      out = { ...out, detached }
    }
    return out
  }

  async list (): Promise<CampaignStatus[]> {
    return await this.#init.host.ask<CampaignStatus[]>(this.#coordinator, { type: 'list' } satisfies CoordinatorMessage)
  }

  /** From any node: see CampaignLookup. */
  async status (id: string): Promise<CampaignStatus | null> {
    return await this.#lookup.status(id)
  }

  async resume (id: string): Promise<CampaignStatus | null> {
    if (await this.#store.campaign(id) == null) return null
    return await this.#init.host.ask<CampaignStatus>(this.#coordinator, { type: 'resume', id } satisfies CoordinatorMessage, { timeoutMs: 60_000 })
  }

  async auditVerify (id: string): Promise<AuditVerdict | null> {
    return await this.#lookup.auditVerify(id)
  }

  async cancel (id: string): Promise<CampaignStatus | null> {
    return await this.#init.host.ask<CampaignStatus | null>(this.#coordinator, { type: 'cancel', id } satisfies CoordinatorMessage)
  }

  /** From any node, from an up-to-date copy only; a campaign that has not succeeded only with `partial`. */
  async results (id: string, format: ExportFormat, opts: { partial?: boolean } = {}): Promise<ResultsAnswer | null> {
    return await this.#lookup.results(id, format, opts)
  }

  /** summary.md (or summary.html) of an ended campaign, from any node. */
  async summary (id: string, format: SummaryFormat = 'md'): Promise<string | null> {
    return await this.#lookup.summary(id, format)
  }

  /**
   * Draining: no new leases; shards not started go back at once; running ones
   * get until `signal` fires, then are handed back too.
   */
  async drain (signal: AbortSignal): Promise<void> {
    const { idle, handBack } = await this.#init.host.ask<{ idle: Promise<void>, handBack: () => void }>(this.#worker, { type: 'drain' } satisfies WorkerMessage)
    const onDeadline = (): void => { handBack() }
    signal.addEventListener('abort', onDeadline, { once: true })
    try {
      await idle
    } finally {
      signal.removeEventListener('abort', onDeadline)
    }
  }

  async stop (): Promise<void> {
    await Promise.all([this.#runners.module.close(), this.#runners.exec.close(), this.#runners.onnx.close()])
  }
}

/** Paths of blobs found in the store, dropped when it removes them; using one moves its last-used time once a minute. */
class ReadyPaths {
  readonly #store: BlobService['store']
  readonly #paths = new Map<string, { path: string, touchedAt: number }>()

  constructor (store: BlobService['store']) {
    this.#store = store
    store.onRemove(hash => { this.#paths.delete(hash) })
  }

  path (hash: string): string | undefined {
    const known = this.#paths.get(hash)
    if (known == null) return undefined
    if (Date.now() - known.touchedAt > TOUCH_EVERY_MS) {
      known.touchedAt = Date.now()
      void this.#store.touch(hash).catch(() => {})
    }
    return known.path
  }

  add (hash: string, path: string): string {
    this.#paths.set(hash, { path, touchedAt: Date.now() })
    return path
  }
}

function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
