import type { Logger } from 'pino'
import { describeError } from '../../actors/runtime/errors.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { ALLOCATION_LABEL, ENGINES, type Allocation, type Burst, type Engine, type EngineOptions, type EngineUp, type EngineView } from '../../protocols/bridge/schema.ts'
import type { Storage, Sublevel } from '../../node/storage.ts'
import type { BridgeEngine, JoinCommand } from './engine.ts'

/** how long one engine query (squeue, the Dask driver) may take while listing */
const VIEW_TIMEOUT_MS = 20_000
/** what a bridged node gets to hand its work back when its allocation ends */
export const DEFAULT_DRAIN_MS = 20_000
/** a Slurm, Ray or Kubernetes node leaves after this long without work unless told otherwise (its slot costs); a Dask node stays with its worker */
export const DEFAULT_IDLE_MS = 120_000

export class BridgeError extends Error {
  override name = 'BridgeError'
  /** HTTP status for the control API: 404 unknown allocation, 502 the engine failed */
  readonly status: 400 | 404 | 502
  constructor (message: string, status: 400 | 404 | 502) {
    super(message)
    this.status = status
  }
}

/**
 * Why a burst must not start, or undefined: a `maxCost` is honoured only
 * against an estimate (`zp submit --prices` stamps one), and an estimate
 * above it stops the burst before anything is spent.
 */
export function burstRefusal (burst: Burst): string | undefined {
  if (burst.maxCost == null) return undefined
  if (burst.estimate == null) return `it has maxCost ${burst.maxCost} but no cost estimate; submit it with 'zp submit FILE --prices prices.yaml' so its cost is estimated first`
  if (burst.estimate.cost > burst.maxCost) return `its estimated cost ${burst.estimate.cost.toFixed(2)} ${burst.estimate.currency} exceeds maxCost ${burst.maxCost}; raise maxCost or burst fewer nodes`
  return undefined
}

export interface BridgeRegistryInit {
  storage: Storage
  log: Logger
  engines: { [E in Engine]: BridgeEngine<EngineOptions[E]> }
  /** the mesh as this node sees it: bridged nodes carry the label zp.bridge=<allocation id> */
  peers: () => Promise<PeerView[]>
  /** the zp-node command the engines start, without the bootstrap addresses */
  nodeArgv: string[]
  /** this node's announced addresses (with /p2p/): where bridged nodes join by default */
  announced: () => string[]
  /** this node's pre-shared key file, used when an allocation names none */
  pskFile?: string
  /** this node's key as text when it has no file (zp-node --psk-env) */
  pskText?: string
}

/**
 * Every bridge allocation this node made, kept in LevelDB so a node that
 * restarts still knows them and can release them. `list` asks each engine
 * for its state and the mesh for the peers each became; a campaign's burst
 * allocations are released when it ends.
 */
export class BridgeRegistry {
  readonly #init: BridgeRegistryInit
  readonly #db: Sublevel<Allocation>
  readonly #log: Logger
  /** campaigns whose burst is being brought up (a resume right after a submit must not start it twice) */
  readonly #bursting = new Set<string>()

  constructor (init: BridgeRegistryInit) {
    this.#init = init
    this.#db = init.storage.sublevel<Allocation>('bridges')
    this.#log = init.log.child({ component: 'bridges' })
  }

  async up (req: EngineUp & { bootstrap?: string[], campaignId?: string }, signal: AbortSignal): Promise<Allocation> {
    const bootstrap = req.bootstrap != null && req.bootstrap.length > 0 ? req.bootstrap : this.#init.announced()
    if (bootstrap.length === 0) throw new BridgeError('this node announces no address for bridged nodes to join through; start it with --announce /ip4/<address the cluster can reach>/tcp/<port>, or pass --bootstrap ADDR', 400)
    const pskFile = req.options.pskFile ?? this.#init.pskFile
    const pskText = pskFile == null ? this.#init.pskText : undefined
    // only Kubernetes carries the key's text (a Secret); the others start nodes that read a file
    if (pskText != null && req.engine !== 'k8s') throw new BridgeError(`this node holds its key from --psk-env, and ${req.engine} nodes read theirs from a file: pass --psk FILE naming the key at a path the cluster's machines share`, 400)
    // 0: never leave for want of work
    const idle = req.options.idleMs ?? (req.engine === 'dask' ? undefined : DEFAULT_IDLE_MS)
    const idleMs = idle === 0 ? undefined : idle
    const join: JoinCommand = { argv: this.#init.nodeArgv, bootstrap, drainMs: DEFAULT_DRAIN_MS, ...(pskFile != null ? { pskFile } : {}), ...(pskText != null ? { pskText } : {}), ...(idleMs != null ? { idleMs } : {}) }
    const { id, engineId, requested } = await this.#engine(req.engine).up(req.options, join, signal)
    const alloc: Allocation = {
      id,
      engine: req.engine,
      engineId,
      state: 'PENDING',
      requested,
      running: 0,
      peers: [],
      bootstrap,
      options: req.options,
      createdAt: Date.now(),
      ...(req.campaignId != null ? { campaignId: req.campaignId } : {})
    }
    await this.#put(alloc)
    this.#log.info({ allocation: id, engine: req.engine, engineId, requested, campaign: req.campaignId }, `bridge allocation ${id} submitted (${requested} node${requested === 1 ? '' : 's'} asked for)`)
    return alloc
  }

  /** Every allocation, newest first, each refreshed from its engine (ended ones as they ended). */
  async list (signal: AbortSignal): Promise<Allocation[]> {
    const all = await this.#all()
    const peers = await this.#init.peers().catch(() => [])
    const fresh = await Promise.all(all.map(async a => await this.#refresh(a, peers, signal)))
    return fresh.sort((a, b) => b.createdAt - a.createdAt)
  }

  async get (id: string, signal: AbortSignal): Promise<Allocation> {
    const alloc = await this.#db.get(id)
    if (alloc == null) throw new BridgeError(`no bridge allocation ${id} on this node; 'zp bridge list' shows them`, 404)
    return await this.#refresh(alloc, await this.#init.peers().catch(() => []), signal)
  }

  /** Releases an allocation (scancel, plugin unregister); its nodes drain and leave. */
  async down (id: string, signal: AbortSignal): Promise<Allocation> {
    const alloc = await this.#db.get(id)
    if (alloc == null) throw new BridgeError(`no bridge allocation ${id} on this node; 'zp bridge list' shows them`, 404)
    try {
      await this.#engine(alloc.engine).down(alloc, signal)
    } catch (err) {
      throw new BridgeError(`cannot release ${id}: ${describeError(err)}`, 502)
    }
    const ended: Allocation = { ...alloc, state: 'ENDED', running: 0, endedAt: alloc.endedAt ?? Date.now(), reason: alloc.reason ?? 'released (zp bridge down)' }
    await this.#put(ended)
    this.#log.info({ allocation: id, campaign: alloc.campaignId }, `bridge allocation ${id} released`)
    return ended
  }

  /** A campaign with `burst:` started (or resumed): bring its capacity up, once. Failures are logged; the campaign runs on what the mesh has. */
  async campaignStarted (campaignId: string, burst: Burst | undefined, signal: AbortSignal): Promise<void> {
    if (burst == null || this.#bursting.has(campaignId)) return
    this.#bursting.add(campaignId)
    try {
      const have = new Set((await this.#all()).filter(a => a.campaignId === campaignId).map(a => a.engine))
      const wanted = ENGINES.flatMap(engine => burst[engine] != null ? [{ engine, options: burst[engine] } as EngineUp] : [])
      if (wanted.length === 0) return
      const refused = burstRefusal(burst)
      if (refused != null) {
        this.#log.error({ campaign: campaignId }, `campaign burst not started: ${refused}; the campaign runs on the nodes already in the mesh`)
        return
      }
      for (const req of wanted) {
        if (have.has(req.engine)) continue
        try {
          await this.up({ ...req, campaignId }, signal)
        } catch (err) {
          this.#log.error({ campaign: campaignId, engine: req.engine, err: describeError(err) }, `campaign burst on ${req.engine} failed; the campaign runs on the nodes already in the mesh`)
        }
      }
    } finally {
      this.#bursting.delete(campaignId)
    }
  }

  /** A campaign ended (or was cancelled): release what its burst brought up. */
  async campaignEnded (campaignId: string, signal: AbortSignal): Promise<void> {
    for (const alloc of await this.#all()) {
      if (alloc.campaignId !== campaignId || alloc.endedAt != null) continue
      await this.down(alloc.id, signal).catch((err: unknown) => {
        this.#log.error({ campaign: campaignId, allocation: alloc.id, err: describeError(err) }, `cannot release ${alloc.id} after its campaign ended; run 'zp bridge down ${alloc.id}'`)
      })
    }
  }

  #engine (engine: Engine): BridgeEngine<EngineOptions[Engine]> {
    return this.#init.engines[engine] as BridgeEngine<EngineOptions[Engine]>
  }

  async #refresh (alloc: Allocation, peers: PeerView[], signal: AbortSignal): Promise<Allocation> {
    const members = peers.filter(p => p.state !== 'dead' && p.capabilities?.labels?.[ALLOCATION_LABEL] === alloc.id).map(p => p.peerId)
    if (alloc.endedAt != null) return { ...alloc, peers: members }
    let view: EngineView
    try {
      view = await this.#engine(alloc.engine).view(alloc, AbortSignal.any([signal, AbortSignal.timeout(VIEW_TIMEOUT_MS)]))
    } catch (err) {
      // the engine could not be asked now: what was known, said so
      return { ...alloc, peers: members, reason: `cannot ask ${alloc.engine} now: ${describeError(err)}` }
    }
    const ended = view.state === 'ENDED' || view.state === 'FAILED'
    const next: Allocation = {
      ...alloc,
      state: view.state,
      requested: view.requested,
      running: view.running,
      peers: members,
      ...(view.reason != null ? { reason: view.reason } : {}),
      ...(ended ? { endedAt: Date.now() } : {})
    }
    if (view.reason == null) delete next.reason
    if (next.state !== alloc.state || next.running !== alloc.running || ended) await this.#put(next).catch(() => {})
    return next
  }

  async #all (): Promise<Allocation[]> {
    return await this.#db.values().all()
  }

  async #put (alloc: Allocation): Promise<void> {
    await this.#init.storage.write(async () => { await this.#db.put(alloc.id, alloc) })
  }
}
