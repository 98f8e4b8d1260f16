import { createHash } from 'node:crypto'
import { hostname, availableParallelism } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import pkg from '../package.json' with { type: 'json' }
import { ActorHost } from '../actors/runtime/host.ts'
import { describeError } from '../actors/runtime/errors.ts'
import { membershipActor, MEMBERSHIP_ACTOR, type MembershipMessage, type PeerView } from '../actors/membership/membership.ts'
import type { LivenessTimings } from '../actors/membership/liveness.ts'
import type { Transition } from '../actors/membership/peer-table.ts'
import { systemActor, SYSTEM_ACTOR } from '../actors/system/system.ts'
import { COORDINATOR_ACTOR } from '../actors/coordinator/coordinator.ts'
import { joinMesh } from '../bootstrap/join.ts'
import { peerIdIn } from '../bootstrap/address.ts'
import { ACTOR_PROTOCOL, MAX_STREAMS } from '../protocols/actor/constants.ts'
import { ActorTransport } from '../protocols/actor/transport.ts'
import { decodeAs, encode } from '../protocols/common/codec.ts'
import { deadline } from '../protocols/common/signals.ts'
import type { CapabilityReport } from '../protocols/membership/capabilities.ts'
import { HEARTBEAT_TOPIC, MAX_HEARTBEAT_BYTES } from '../protocols/membership/constants.ts'
import { HeartbeatSchema } from '../protocols/membership/schema.ts'
import { startApi, type ApiRoutes, type ApiServer } from './api/server.ts'
import { loadOrCreateToken } from './api/token.ts'
import { dataPaths, ensureDataDir, removeNodeInfo, writeNodeInfo } from './datadir.ts'
import { loadOrCreateIdentity, peerIdOf } from './identity.ts'
import { createMeshLibp2p, type MeshLibp2p } from './libp2p.ts'
import { handshakeReporter } from './inbound-failures.ts'
import { createLogger } from './logger.ts'
import { probeCapabilities, type ProbeOptions } from './probe/index.ts'
import { loadPsk, type Psk } from './psk.ts'
import { openDb, Storage, type Db } from './storage.ts'
import { Trust } from './trust.ts'
import { nodeRoutes, type BootstrapAttempt } from './api/routes.ts'
import { BlobAccess } from './blobs/access.ts'
import { BlobGc, DEFAULT_BLOB_RETENTION_MS } from './blobs/gc.ts'
import { BlobService } from './blobs/service.ts'
import { BlobStore } from './blobs/store.ts'
import { campaignRoutes } from './campaign/routes.ts'
import { CampaignService } from './campaign/service.ts'
import { execCapabilities, loadExecConfig } from './exec-config.ts'
import type { ExecTemplates } from '../actors/worker/runners/types.ts'
import type { Capabilities } from './probe/types.ts'

export const VERSION: string = pkg.version
export const DEFAULT_LISTEN = '/ip4/0.0.0.0/tcp/4170'
export const DEFAULT_API = { host: '127.0.0.1', port: 7170 }

export interface NodeOptions {
  dataDir: string
  /** shown in peer tables and logs; defaults to the host name */
  name?: string
  listen?: string[]
  announce?: string[]
  /** peers to join through (zp-node join) */
  bootstrap?: Multiaddr[]
  pskFile?: string
  /** the pre-shared key already loaded (the CLI reads it before touching the data dir); wins over pskFile */
  psk?: Psk
  /** peer IDs whose coordinators this node works for */
  trust?: string[]
  /** trust the peer joined through (default true) */
  trustBootstrap?: boolean
  /** trust every peer of the mesh (with a pre-shared key: every holder of the key) */
  trustMesh?: boolean
  /** control API address, or false for none */
  api?: { host: string, port: number } | false
  /** extra API routes (campaign endpoints mount here) */
  apiRoutes?: ApiRoutes[]
  /** capability probing; `false` skips it, a report skips it and uses that report */
  probe?: Omit<ProbeOptions, 'signal' | 'logger'> | false | CapabilityReport
  /** re-probe this often (default 10 min) */
  probeIntervalMs?: number
  slots?: number
  /** YAML/JSON file of the command templates exec workloads may run on this node */
  execConfig?: string
  /** pick up the campaigns this node coordinated when it stopped (default true) */
  resume?: boolean
  /** replicas of a campaign whose file does not say (default 2) */
  replicas?: number
  /** folders besides a campaign's own that the files it names may be in (zp-node --data-root) */
  dataRoots?: string[]
  /** how long a blob is kept once nothing references it, e.g. after its campaign ended (default 24 h; 0: at once) */
  blobRetentionMs?: number
  /** tests only: peers this node refuses connections with while they are in the set (a simulated partition) */
  blocked?: ReadonlySet<string>
  timings?: Partial<LivenessTimings>
  /** how long draining waits for running work before stopping anyway */
  drainTimeoutMs?: number
  logger?: Logger
  /** write logs to <data-dir>/logs/node.log (default true) */
  logFile?: boolean
  /** write <data-dir>/node.json (default true) */
  writeNodeInfo?: boolean
}

export type NodeState = 'starting' | 'running' | 'draining' | 'stopping' | 'stopped'

/** Work that must finish (or be handed back) before a draining node stops. */
export type DrainHook = (signal: AbortSignal) => Promise<void>

const KNOWN_PEERS_PREFIX = 'peers!'
const KNOWN_PEER_TTL_MS = 7 * 24 * 3600 * 1000

/**
 * One mesh node: identity, libp2p, the actor host with its system actors,
 * capability probing, the control API, and the clean way down
 * (RUNNING → DRAINING → STOPPED).
 */
export class ZpNode {
  readonly peerId: string
  readonly name: string
  readonly dataDir: string
  readonly incarnation: number
  readonly log: Logger
  readonly libp2p: MeshLibp2p
  readonly host: ActorHost
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
  #execCapabilities: Capabilities = {}
  #campaigns: CampaignService | undefined
  readonly #transport: ActorTransport
  readonly #drainHooks = new Set<DrainHook>()
  readonly #transitionListeners = new Set<(t: Transition) => void>()
  readonly #lifetime = new AbortController()
  readonly #stopped = Promise.withResolvers<void>()
  #state: NodeState = 'starting'
  #api: ApiServer | undefined
  #stopping: Promise<void> | undefined
  #capabilities: CapabilityReport | null = null
  #probeTimer: ReturnType<typeof setInterval> | undefined
  #busySlots = 0
  /** bootstrap addresses not reached yet; cleared once one answers */
  readonly #joining = new Map<string, BootstrapAttempt>()

  private constructor (init: {
    opts: NodeOptions, peerId: string, name: string, log: Logger, libp2p: MeshLibp2p, db: Db, psk: Psk | undefined, trust: Trust, blobStore: BlobStore, execTemplates: ExecTemplates
  }) {
    this.#opts = init.opts
    this.peerId = init.peerId
    this.name = init.name
    this.dataDir = init.opts.dataDir
    this.incarnation = Date.now()
    this.log = init.log
    this.libp2p = init.libp2p
    this.db = init.db
    this.storage = new Storage(init.db, init.log.child({ component: 'storage' }))
    this.psk = init.psk
    this.trust = init.trust
    this.#execTemplates = init.execTemplates
    this.#blobAccess = new BlobAccess(peer => this.trust.isTrusted(peer))
    this.blobs = new BlobService({
      libp2p: init.libp2p,
      store: init.blobStore,
      access: this.#blobAccess,
      log: this.log.child({ component: 'blobs' })
    })
    this.gc = new BlobGc({
      store: init.blobStore,
      retentionMs: init.opts.blobRetentionMs ?? DEFAULT_BLOB_RETENTION_MS,
      log: this.log.child({ component: 'blob-gc' })
    })
    this.#transport = new ActorTransport(async (peer, signal) => await this.libp2p.dialProtocol(peerIdFromString(peer), ACTOR_PROTOCOL, {
      signal, maxOutboundStreams: MAX_STREAMS
    }), this.log.child({ component: 'actor-transport' }))
    this.host = new ActorHost({ self: this.peerId, logger: this.log, trust: this.trust, transport: this.#transport })
  }

  static async start (opts: NodeOptions): Promise<ZpNode> {
    const cleanup: Array<() => Promise<void>> = []
    try {
      // the files the options name first: a bad one leaves the data dir untouched
      const psk = opts.psk ?? (opts.pskFile != null ? await loadPsk(opts.pskFile) : undefined)
      const execTemplates = opts.execConfig != null ? await loadExecConfig(opts.execConfig) : {}
      await ensureDataDir(opts.dataDir)
      const paths = dataPaths(opts.dataDir)
      const { key, created } = await loadOrCreateIdentity(opts.dataDir)
      const peerId = peerIdOf(key)
      const name = opts.name ?? hostname()
      const log = (opts.logger ?? createLogger({ file: opts.logFile === false ? undefined : paths.log }))
        .child({ node: name, nodeId: peerId.slice(-8) })
      if (created) log.info({ peerId }, 'created a new node identity')
      const db = await openDb(paths.db, opts.dataDir)
      cleanup.push(async () => { await db.close() })
      const blobStore = await BlobStore.open(paths.blobs)
      const libp2p = await createMeshLibp2p({
        privateKey: key,
        listen: opts.listen ?? [DEFAULT_LISTEN],
        announce: opts.announce,
        psk: psk?.bytes,
        blocked: opts.blocked,
        onInboundFailure: handshakeReporter({ log: log.child({ component: 'handshake' }), psk })
      })
      const node = new ZpNode({ opts, peerId, name, log, libp2p, db, psk, trust: new Trust(peerId, opts.trust ?? [], { mesh: opts.trustMesh }), blobStore, execTemplates })
      if (opts.trustMesh === true && psk == null) {
        log.warn('--trust-mesh without --psk: any host that can reach this node may run work on it; use a pre-shared key')
      }
      cleanup.push(async () => { await node.#teardown() })
      await node.#start()
      return node
    } catch (err) {
      for (const undo of cleanup.reverse()) await undo().catch(() => {})
      throw err
    }
  }

  get state (): NodeState {
    return this.#state
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
    return this.#capabilities
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
    if (this.#joining.size === 0 || this.libp2p.getConnections().length > 0) return []
    return [...this.#joining.values()].map(b => ({ ...b }))
  }

  multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(String)
  }

  slots (): { total: number, free: number } {
    const total = this.#opts.slots ?? availableParallelism()
    const free = this.#state === 'running' ? Math.max(0, total - this.#busySlots) : 0
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
      state: this.#state,
      version: VERSION,
      incarnation: this.incarnation,
      multiaddrs: this.multiaddrs(),
      api: this.apiUrl ?? null,
      pid: process.pid,
      dataDir: this.dataDir,
      pskFingerprint: this.psk?.fingerprint ?? null,
      trusted: this.trust.mesh ? 'every peer of the mesh (--trust-mesh)' : this.trust.list(),
      slots: this.slots(),
      capabilities: this.#capabilities,
      blobStore: this.blobs.store.usage()
    }
  }

  async #start (): Promise<void> {
    const { libp2p, log } = this
    const membership = { peer: this.peerId, name: MEMBERSHIP_ACTOR }
    const tellMembership = (msg: MembershipMessage): void => {
      void this.host.tell(membership, msg).catch(() => {})
    }

    this.host.spawn(MEMBERSHIP_ACTOR, membershipActor({
      self: this.peerId,
      name: this.name,
      incarnation: this.incarnation,
      timings: this.#opts.timings,
      multiaddrs: () => this.multiaddrs(),
      slots: () => this.slots(),
      onTransition: (t) => { this.#onTransition(t) },
      port: {
        publish: async (hb) => { await libp2p.services.pubsub.publish(HEARTBEAT_TOPIC, encode(hb)) },
        isConnected: (peer) => libp2p.getConnections(peerIdFromString(peer)).length > 0,
        connect: async (peer, addrs, signal) => {
          const id = peerIdFromString(peer)
          if (libp2p.getConnections(id).length > 0) return
          const known = addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
          if (known.length > 0) await libp2p.peerStore.merge(id, { multiaddrs: known })
          await libp2p.dial(id, { signal })
        }
      }
    }))
    this.host.spawn(SYSTEM_ACTOR, systemActor({
      info: () => this.info(),
      drain: (reason) => { void this.drain(reason) }
    }))
    this.#execCapabilities = await execCapabilities(this.#execTemplates)
    const campaigns = new CampaignService({
      self: this.peerId,
      name: this.name,
      version: VERSION,
      host: this.host,
      storage: this.storage,
      runsDir: dataPaths(this.dataDir).runs,
      log: this.log,
      blobs: this.blobs,
      access: this.#blobAccess,
      gc: this.gc,
      slots: this.slots().total,
      execTemplates: this.#execTemplates,
      capabilities: () => this.#capabilities,
      peers: async () => await this.peers(),
      setBusy: (busy) => { this.setBusySlots(busy) },
      isTrusted: (peer) => this.trust.isTrusted(peer),
      defaultReplicas: this.#opts.replicas,
      resume: this.#opts.resume,
      dataRoots: this.#opts.dataRoots
    })
    this.#campaigns = campaigns
    this.onDrain(async (signal) => { await campaigns.drain(signal) })
    this.onPeerTransition((t) => {
      if (t.to === 'dead' || t.to === 'draining') {
        void this.host.tell({ peer: this.peerId, name: COORDINATOR_ACTOR }, { type: 'peer-lost', peer: t.peerId, state: t.to }).catch(() => {})
      }
    })
    await this.blobs.start()

    await libp2p.handle(ACTOR_PROTOCOL, (stream, connection) => {
      this.#transport.accept(stream, connection.remotePeer.toString(), this.host)
    }, { maxInboundStreams: MAX_STREAMS, maxOutboundStreams: MAX_STREAMS })
    libp2p.addEventListener('connection:open', (evt) => {
      tellMembership({ type: 'connected', peer: evt.detail.remotePeer.toString(), outbound: evt.detail.direction === 'outbound' })
    })
    libp2p.addEventListener('peer:disconnect', (evt) => {
      const peer = evt.detail.toString()
      this.#transport.forget(peer)
      tellMembership({ type: 'disconnected', peer })
    })
    const pubsub = libp2p.services.pubsub
    pubsub.addEventListener('message', (evt) => {
      const msg = evt.detail
      if (msg.topic !== HEARTBEAT_TOPIC || msg.type !== 'signed') return
      if (msg.data.byteLength > MAX_HEARTBEAT_BYTES) return
      try {
        tellMembership({ type: 'heartbeat', peer: msg.from.toString(), hb: decodeAs(HeartbeatSchema, msg.data, 'heartbeat') })
      } catch (err) {
        log.debug({ from: msg.from.toString(), err: describeError(err) }, 'ignored an invalid heartbeat')
      }
    })

    try {
      await libp2p.start()
    } catch (err) {
      throw new Error(`cannot listen on ${(this.#opts.listen ?? [DEFAULT_LISTEN]).join(', ')}: ${describeError(err)}; pass --listen with a free address (tcp/0 picks a free port)`)
    }
    pubsub.subscribe(HEARTBEAT_TOPIC)

    if (this.#opts.api !== false) {
      const api = this.#opts.api ?? DEFAULT_API
      this.#api = await startApi({
        host: api.host,
        port: api.port,
        token: await loadOrCreateToken(this.dataDir),
        log,
        routes: [nodeRoutes(this), campaignRoutes(campaigns), ...(this.#opts.apiRoutes ?? [])]
      })
    }

    this.#state = 'running'
    if (this.#opts.writeNodeInfo !== false) {
      await writeNodeInfo(this.dataDir, {
        peerId: this.peerId,
        name: this.name,
        multiaddrs: this.multiaddrs(),
        api: this.apiUrl ?? null,
        pid: process.pid,
        startedAt: new Date(this.incarnation).toISOString(),
        version: VERSION
      })
    }
    log.info({
      peerId: this.peerId,
      multiaddrs: this.multiaddrs(),
      api: this.apiUrl ?? null,
      dataDir: this.dataDir,
      pid: process.pid,
      psk: this.psk?.fingerprint ?? null
    }, `node ${this.name} started`)

    this.#startProbing()
    this.gc.start()
    tellMembership({ type: 'seed', peers: await this.#knownPeers() })
    const bootstrap = this.#opts.bootstrap ?? []
    for (const addr of bootstrap) this.#joining.set(addr.toString(), { address: addr.toString(), attempts: 0, lastError: null })
    for (const addr of bootstrap) void this.#join(addr)
  }

  async #join (addr: Multiaddr): Promise<void> {
    // every failed dial is counted for /v1/health until one bootstrap answers
    const dialer = {
      dial: async (a: Multiaddr, opts: { signal: AbortSignal }) => {
        try {
          return await this.libp2p.dial(a, opts)
        } catch (err) {
          const entry = this.#joining.get(addr.toString())
          if (entry != null) {
            entry.attempts++
            entry.lastError = this.#explainDialError(err as Error)
          }
          throw err
        }
      }
    }
    try {
      const conn = await joinMesh(dialer, addr, {
        signal: this.#lifetime.signal,
        log: this.log,
        explain: (err) => this.#explainDialError(err)
      })
      this.#joining.clear()
      const bootstrapPeer = conn.remotePeer.toString()
      const named = peerIdIn(addr)
      if (named != null && named !== bootstrapPeer) {
        this.log.warn({ expected: named, got: bootstrapPeer }, 'bootstrap address names another peer ID than the one that answered')
      }
      if (this.#opts.trustBootstrap !== false) {
        this.trust.add(bootstrapPeer, 'joined through it')
        this.log.info({ bootstrapPeer }, 'trusting the bootstrap peer (disable with --no-trust-bootstrap)')
      }
    } catch (err) {
      if (!this.#lifetime.signal.aborted) this.log.error({ err: describeError(err) }, 'joining the mesh failed')
    }
  }

  /** The raw libp2p errors of a failed handshake do not say "wrong key"; this does. */
  #explainDialError (err: Error): string {
    const msg = describeError(err)
    if (err.name === 'EncryptionFailedError') {
      return this.psk != null
        ? `handshake failed (${msg}): the peer probably uses a different pre-shared key, or none (this node's key fingerprint is ${this.psk.fingerprint})`
        : `handshake failed (${msg}): the peer probably runs a private mesh; pass the same --psk FILE`
    }
    if (this.psk != null && err.name === 'TimeoutError') {
      return `${msg} (if the host is reachable, it may not use this pre-shared key: fingerprint ${this.psk.fingerprint})`
    }
    return msg
  }

  #onTransition (t: Transition): void {
    const key = KNOWN_PEERS_PREFIX + t.peerId
    if (t.to === 'alive' && t.multiaddrs.length > 0) {
      void this.db.put(key, { multiaddrs: t.multiaddrs, name: t.name, seenAt: Date.now() }).catch(() => {})
    } else if (t.left) {
      void this.db.del(key).catch(() => {})
    }
    for (const listener of this.#transitionListeners) listener(t)
  }

  async #knownPeers (): Promise<Array<{ peerId: string, multiaddrs: string[] }>> {
    const out: Array<{ peerId: string, multiaddrs: string[] }> = []
    for await (const [key, value] of this.db.iterator({ gte: KNOWN_PEERS_PREFIX, lt: KNOWN_PEERS_PREFIX + '\xff' })) {
      const rec = value as { multiaddrs?: string[], seenAt?: number }
      if (Date.now() - (rec.seenAt ?? 0) > KNOWN_PEER_TTL_MS) {
        await this.db.del(key)
      } else if (Array.isArray(rec.multiaddrs)) {
        out.push({ peerId: key.slice(KNOWN_PEERS_PREFIX.length), multiaddrs: rec.multiaddrs })
      }
    }
    return out
  }

  #startProbing (): void {
    const probe = this.#opts.probe
    if (probe === false) return
    if (probe != null && 'capabilities' in probe) {
      this.#setCapabilities(probe)
      return
    }
    const run = async (): Promise<void> => {
      try {
        const report = await probeCapabilities({ ...probe, signal: this.#lifetime.signal, logger: this.log })
        if (!this.#lifetime.signal.aborted) this.#setCapabilities(report)
      } catch (err) {
        if (!this.#lifetime.signal.aborted) this.log.error({ err: describeError(err) }, 'capability probe failed')
      }
    }
    void run()
    this.#probeTimer = setInterval(() => { void run() }, this.#opts.probeIntervalMs ?? 10 * 60_000)
    this.#probeTimer.unref()
  }

  #setCapabilities (probed: CapabilityReport): void {
    const report = { ...probed, capabilities: { ...probed.capabilities, ...this.#execCapabilities } }
    // the hash covers what was found, not when: an unchanged re-probe costs peers nothing
    const hash = createHash('sha256').update(JSON.stringify([report.host, sortKeys(report.capabilities)])).digest('hex').slice(0, 32)
    const first = this.#capabilities == null
    this.#capabilities = report
    void this.host.tell({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'set-capabilities', report, hash } satisfies MembershipMessage).catch(() => {})
    if (first) {
      const ok = Object.entries(report.capabilities).filter(([, c]) => c.status === 'ok').map(([k]) => k)
      this.log.info({ capabilities: ok.length, durationMs: Math.round(report.durationMs) }, 'capabilities probed')
    }
  }

  /**
   * RUNNING → DRAINING (peers see it) → work finishes or is handed back
   * (bounded by drainTimeoutMs) → clean stop. Idempotent.
   */
  async drain (reason = 'asked to drain'): Promise<void> {
    if (this.#state !== 'running') return await this.stopped
    this.#state = 'draining'
    this.log.info({ reason }, 'draining: taking no new work')
    await this.host.ask({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'set-state', state: 'draining' } satisfies MembershipMessage, { timeoutMs: 5000 })
      .catch(() => {})
    const d = deadline(this.#opts.drainTimeoutMs ?? 60_000)
    try {
      await Promise.allSettled([...this.#drainHooks].map(async hook => { await hook(d.signal) }))
    } finally {
      d.clear()
    }
    await this.stop()
  }

  /** Stops now: says goodbye to peers, closes the API, actors, libp2p and the database. */
  async stop (): Promise<void> {
    this.#stopping ??= this.#teardown()
    await this.#stopping
  }

  async #teardown (): Promise<void> {
    const wasRunning = this.#state === 'running' || this.#state === 'draining'
    this.#state = 'stopping'
    this.#lifetime.abort(new Error('node stopping'))
    if (this.#probeTimer != null) clearInterval(this.#probeTimer)
    await this.gc.stop()
    if (wasRunning) {
      // goodbye, so peers mark this node DEAD at once instead of after the silence timeout
      await this.host.ask({ peer: this.peerId, name: MEMBERSHIP_ACTOR }, { type: 'set-state', state: 'left' } satisfies MembershipMessage, { timeoutMs: 2000 })
        .catch(() => {})
    }
    await this.#api?.close().catch(() => {})
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
    this.#state = 'stopped'
    this.log.info('node stopped')
    this.#stopped.resolve()
  }
}

function sortKeys<T> (record: Record<string, T>): Array<[string, T]> {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b))
}
