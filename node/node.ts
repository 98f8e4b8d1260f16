import { availableParallelism } from 'node:os'
import type { Logger } from 'pino'
import pkg from '../package.json' with { type: 'json' }
import type { ActorHost } from '../actors/runtime/host.ts'
import { listenFailure } from './listen-failure.ts'
import { describeError } from '../actors/runtime/errors.ts'
import { membershipActor, MEMBERSHIP_ACTOR, type MembershipMessage, type PeerView } from '../actors/membership/membership.ts'
import type { Transition } from '../actors/membership/peer-table.ts'
import { systemActor, SYSTEM_ACTOR } from '../actors/system/system.ts'
import { COORDINATOR_ACTOR } from '../actors/coordinator/coordinator.ts'
import type { ExecTemplates } from '../actors/worker/runners/types.ts'
import type { ActorTransport } from '../protocols/actor/transport.ts'
import type { CapabilityReport } from '../protocols/membership/capabilities.ts'
import type { Load } from '../protocols/membership/schema.ts'
import { HEARTBEAT_TOPIC } from '../protocols/membership/constants.ts'
import type { BootstrapAttempt } from './api/routes.ts'
import type { ApiServer } from './api/server.ts'
import { openCampaigns } from './campaign-wiring.ts'
import type { BlobAccess } from './blobs/access.ts'
import type { BlobGc } from './blobs/gc.ts'
import type { BlobService } from './blobs/service.ts'
import { BootstrapJoin } from './bootstrap-join.ts'
import type { CampaignService } from './campaign/service.ts'
import { CapabilityProbe } from './capabilities.ts'
import { dataPaths, removeNodeInfo, writeNodeInfo } from './datadir.ts'
import { runDrainHooks, type DrainHook } from './drain.ts'
import { execCapabilities } from './exec-config.ts'
import { IdleWatcher, nodeDuties } from './idle.ts'
import { KnownPeers } from './known-peers.ts'
import { queryLogFile } from './logs/file.ts'
import type { MeshLibp2p } from './libp2p.ts'
import { NodeLifecycle, type NodeState } from './lifecycle.ts'
import { meshPort, wireMeshEvents } from './mesh-wiring.ts'
import { startNodeApi } from './node-api.ts'
import { DEFAULT_API, DEFAULT_LISTEN, type NodeOptions } from './options.ts'
import { UtilisationSampler } from './probe/utilisation.ts'
import { startMetricsListener, type MetricsListener } from './metrics/listener.ts'
import type { NodeMetrics } from './metrics/metrics.ts'
import { nodeSources } from './metrics/sources.ts'
import { openNodeParts, type NodeParts } from './parts.ts'
import type { Psk } from './psk.ts'
import type { Db, Storage } from './storage.ts'
import type { Trust } from './trust.ts'

export type { NodeState } from './lifecycle.ts'

export const VERSION: string = pkg.version
export { DEFAULT_API, DEFAULT_LISTEN, type NodeOptions }

export type { DrainHook } from './drain.ts'

/**
 * One mesh node: identity, libp2p, the actor host with its system actors,
 * capability probing, the control API, and the clean way down
 * (RUNNING → DRAINING → STOPPED, as lifecycle.ts has it).
 */
export class ZpNode {
  readonly peerId: string
  readonly name: string
  readonly dataDir: string
  readonly incarnation: number
  readonly log: Logger
  readonly libp2p: MeshLibp2p
  readonly host: ActorHost
  /** this node's Prometheus registry (GET /metrics, --metrics) */
  readonly metrics: NodeMetrics
  readonly trust: Trust
  readonly db: Db
  readonly storage: Storage
  readonly psk: Psk | undefined
  readonly blobs: BlobService
  /** the blob store's garbage collector (zp-node gc, and every few minutes) */
  readonly gc: BlobGc
  readonly #blobAccess: BlobAccess
  readonly #opts: NodeOptions
  readonly #execTemplates: ExecTemplates
  #campaigns: CampaignService | undefined
  readonly #transport: ActorTransport
  readonly #drainHooks = new Set<DrainHook>()
  readonly #transitionListeners = new Set<(t: Transition) => void>()
  readonly #lifetime = new AbortController()
  readonly #stopped = Promise.withResolvers<void>()
  #api: ApiServer | undefined
  #metricsListener: MetricsListener | undefined
  #stopping: Promise<void> | undefined
  #probe: CapabilityProbe | undefined
  #utilisation: UtilisationSampler | undefined
  #idle: IdleWatcher | undefined
  #busySlots = 0
  readonly #lifecycle: NodeLifecycle
  readonly #knownPeers: KnownPeers
  readonly #bootstrap: BootstrapJoin

  private constructor (opts: NodeOptions, parts: NodeParts) {
    this.#opts = opts
    this.peerId = parts.peerId
    this.name = parts.name
    this.dataDir = opts.dataDir
    this.incarnation = Date.now()
    this.log = parts.log
    this.libp2p = parts.libp2p
    this.db = parts.db
    this.storage = parts.storage
    this.psk = parts.psk
    this.trust = parts.trust
    this.#execTemplates = parts.execTemplates
    this.#blobAccess = parts.blobAccess
    this.blobs = parts.blobs
    this.gc = parts.gc
    this.#transport = parts.transport
    this.host = parts.host
    this.metrics = parts.metrics
    this.#lifecycle = new NodeLifecycle(this.log)
    this.#knownPeers = new KnownPeers(this.db)
    this.#bootstrap = new BootstrapJoin({
      dial: async (addr, opts) => await this.libp2p.dial(addr, opts),
      psk: this.psk,
      signal: this.#lifetime.signal,
      log: this.log,
      onJoined: (peer) => {
        if (this.#opts.trustBootstrap === false) return
        this.trust.add(peer, 'joined through it')
        this.log.info({ bootstrapPeer: peer }, 'trusting the bootstrap peer (disable with --no-trust-bootstrap)')
      }
    })
  }

  static async start (opts: NodeOptions): Promise<ZpNode> {
    const parts = await openNodeParts(opts)
    const node = new ZpNode(opts, parts)
    try {
      await node.#start()
      return node
    } catch (err) {
      await node.#shutdown('failed').catch(() => {})
      await parts.db.close().catch(() => {})
      throw err
    }
  }

  get state (): NodeState {
    return this.#lifecycle.state
  }

  get apiUrl (): string | undefined {
    return this.#api?.url
  }

  /** campaigns: submit, status, cancel and export (what the REST routes call) */
  get campaigns (): CampaignService {
    if (this.#campaigns == null) throw new Error('the node has not started')
    return this.#campaigns
  }

  get capabilities (): CapabilityReport | null {
    return this.#probe?.report ?? null
  }

  /** resolves once the node has stopped, however that came about */
  get stopped (): Promise<void> {
    return this.#stopped.promise
  }

  /** aborted when the node begins to stop: long-running work listens to it */
  get signal (): AbortSignal {
    return this.#lifetime.signal
  }

  /** The bootstrap addresses still being tried: empty once one answered, when there were none, or while any peer is connected. */
  joining (): BootstrapAttempt[] {
    // a node restarted with `join` is back in the mesh through the peers it knew, whether its bootstrap answers or not
    if (this.libp2p.getConnections().length > 0) return []
    return this.#bootstrap.pending()
  }

  multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(String)
  }

  slots (): { total: number, free: number } {
    const total = this.#opts.slots ?? availableParallelism()
    const free = this.state === 'running' ? Math.max(0, total - this.#busySlots) : 0
    return { total, free }
  }

  /** Workers report how many slots their running work holds; advertised with the next heartbeat. */
  setBusySlots (busy: number): void {
    this.#busySlots = busy
  }

  onDrain (hook: DrainHook): () => void {
    this.#drainHooks.add(hook)
    return () => { this.#drainHooks.delete(hook) }
  }

  onPeerTransition (listener: (t: Transition) => void): () => void {
    this.#transitionListeners.add(listener)
    return () => { this.#transitionListeners.delete(listener) }
  }

  async peers (): Promise<PeerView[]> {
    return await this.host.ask<PeerView[]>({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'list' } satisfies MembershipMessage, { timeoutMs: 10_000 })
  }

  info (): Record<string, unknown> {
    return {
      peerId: this.peerId,
      name: this.name,
      state: this.state,
      version: VERSION,
      incarnation: this.incarnation,
      multiaddrs: this.multiaddrs(),
      // less its own: a bootstrap host started with the list every host gets has no one to wait for
      bootstrap: (this.#opts.bootstrap ?? []).map(String).filter(a => !this.#bootstrap.own().includes(a)),
      api: this.apiUrl ?? null,
      pid: process.pid,
      dataDir: this.dataDir,
      pskFingerprint: this.psk?.fingerprint ?? null,
      trusted: this.trust.mesh ? 'every peer of the mesh (--trust-mesh)' : this.trust.list(),
      slots: this.slots(),
      labels: this.#opts.labels ?? {},
      capabilities: this.capabilities,
      blobStore: this.blobs.store.usage()
    }
  }

  /** this machine's latest hardware load sample: heartbeats and metrics carry it */
  load (): Load | null {
    return this.#utilisation?.latest ?? null
  }

  get #logFile (): string {
    return this.#opts.logPath ?? dataPaths(this.dataDir).log
  }

  async #start (): Promise<void> {
    const { libp2p, log } = this
    const membership = { peer: this.peerId, name: MEMBERSHIP_ACTOR }
    const tellMembership = (msg: MembershipMessage): void => {
      if (msg.type === 'heartbeat') this.metrics.heartbeat('received')
      void this.host.tell(membership, msg).catch(() => {})
    }

    this.host.spawn(MEMBERSHIP_ACTOR, membershipActor({
      self: this.peerId,
      name: this.name,
      incarnation: this.incarnation,
      timings: this.#opts.timings,
      multiaddrs: () => this.multiaddrs(),
      slots: () => this.slots(),
      load: () => this.load(),
      onTransition: (t) => {
        void this.#knownPeers.record(t)
        for (const listener of this.#transitionListeners) listener(t)
      },
      port: meshPort(libp2p, () => { this.metrics.heartbeat('sent') })
    }))
    this.host.spawn(SYSTEM_ACTOR, systemActor({
      info: () => this.info(),
      drain: (reason) => { void this.drain(reason) },
      logs: async (q) => await queryLogFile(this.#logFile, q)
    }))
    this.#probe = new CapabilityProbe({
      probe: this.#opts.probe,
      intervalMs: this.#opts.probeIntervalMs,
      extra: await execCapabilities(this.#execTemplates),
      labels: this.#opts.labels,
      advertise: (report, hash) => { tellMembership({ type: 'set-capabilities', report, hash }) },
      signal: this.#lifetime.signal,
      log
    })
    const { campaigns, bridges } = openCampaigns(this, this.#opts, { access: this.#blobAccess, execTemplates: this.#execTemplates })
    this.#campaigns = campaigns
    this.metrics.setSources(nodeSources(this))
    this.onDrain(async (signal) => { await campaigns.drain(signal) })
    this.onPeerTransition((t) => {
      if (t.to === 'dead' || t.to === 'draining') {
        void this.host.tell({ peer: this.peerId, name: COORDINATOR_ACTOR }, { type: 'peer-lost', peer: t.peerId, state: t.to }).catch(() => {})
      }
    })
    await this.blobs.start()

    await wireMeshEvents({ libp2p, transport: this.#transport, host: this.host, tellMembership, log })
    try {
      await libp2p.start()
    } catch (err) {
      throw new Error(listenFailure(this.#opts.listen ?? [DEFAULT_LISTEN], describeError(err)))
    }
    libp2p.services.pubsub.subscribe(HEARTBEAT_TOPIC)

    if (this.#opts.api !== false) {
      this.#api = await startNodeApi({
        node: this,
        campaigns,
        bridges,
        logFile: this.#logFile,
        listen: this.#opts.api ?? DEFAULT_API,
        extra: this.#opts.apiRoutes,
        log,
        signal: this.#lifetime.signal
      })
    }

    if (this.#opts.metrics != null) this.#metricsListener = await startMetricsListener({ ...this.#opts.metrics, metrics: this.metrics, log })
    const where = { multiaddrs: this.multiaddrs(), api: this.apiUrl ?? null, metrics: this.#metricsListener?.url ?? null, pid: process.pid }
    this.#lifecycle.become('started', { peerId: this.peerId, ...where, dataDir: this.dataDir, psk: this.psk?.fingerprint ?? null })
    if (this.#opts.writeNodeInfo !== false) {
      await writeNodeInfo(this.dataDir, { peerId: this.peerId, name: this.name, ...where, startedAt: new Date(this.incarnation).toISOString(), version: VERSION })
    }

    this.#probe.start()
    if (this.#opts.loadIntervalMs !== false) {
      this.#utilisation = new UtilisationSampler({ intervalMs: this.#opts.loadIntervalMs, signal: this.#lifetime.signal, log: log.child({ component: 'utilisation' }) })
      this.#utilisation.start()
    }
    this.gc.start()
    if (this.#opts.exitWhenIdleMs != null) {
      this.#idle = new IdleWatcher({
        limitMs: this.#opts.exitWhenIdleMs,
        duties: nodeDuties(this.host, this.peerId, async () => await campaigns.list()),
        leave: () => { void this.drain('idle (--exit-when-idle)') },
        log
      })
      this.#idle.start()
    }
    tellMembership({ type: 'seed', peers: await this.#knownPeers.load() })
    this.#bootstrap.start(this.#opts.bootstrap ?? [])
  }

  /**
   * RUNNING → DRAINING (peers see it) → work finishes or is handed back
   * (bounded by drainTimeoutMs) → clean stop. Idempotent.
   */
  async drain (reason = 'asked to drain'): Promise<void> {
    if (this.#lifecycle.become('drain', { reason }) == null) return await this.stopped
    this.#idle?.stop()
    await this.host.ask({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'set-state', state: 'draining' } satisfies MembershipMessage, { timeoutMs: 5000 })
      .catch(() => {})
    await runDrainHooks(this.#drainHooks, this.#opts.drainTimeoutMs ?? 60_000, this.log)
    await this.stop()
  }

  /** Stops now: says goodbye to peers, closes the API, actors, libp2p and the database. */
  async stop (): Promise<void> {
    await this.#shutdown('stop')
  }

  /** One teardown, however many ask for it: a stop, a drain ending, a start that failed. */
  async #shutdown (event: 'stop' | 'failed'): Promise<void> {
    this.#stopping ??= this.#teardown(event)
    await this.#stopping
  }

  async #teardown (event: 'stop' | 'failed'): Promise<void> {
    const from = this.#lifecycle.become(event)
    this.#lifetime.abort(new Error('node stopping'))
    this.#probe?.stop()
    this.#idle?.stop()
    await this.gc.stop()
    if (from === 'running' || from === 'draining') {
      // goodbye, so peers mark this node DEAD at once instead of after the silence timeout
      await this.host.ask({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'set-state', state: 'left' } satisfies MembershipMessage, { timeoutMs: 2000 })
        .catch(() => {})
    }
    await this.#api?.close().catch(() => {})
    await this.#metricsListener?.close().catch(() => {})
    this.#transport.stop()
    await this.host.stop()
    await this.#campaigns?.stop().catch(() => {})
    await this.blobs.stop()
    try {
      await this.libp2p.stop()
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'libp2p stop failed')
    }
    await this.storage.close().catch(() => {})
    if (this.#opts.writeNodeInfo !== false) await removeNodeInfo(this.dataDir).catch(() => {})
    this.#lifecycle.become('stopped')
    this.#stopped.resolve()
  }
}

