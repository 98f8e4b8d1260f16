import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { coordinatorActor, COORDINATOR_ACTOR, type CoordinatorMessage } from '../../actors/coordinator/coordinator.ts'
import { CampaignStore } from '../../actors/coordinator/store.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { verifyAudit, type AuditVerdict } from '../../actors/coordinator/audit.ts'
import { FINAL_STATES } from '../../actors/coordinator/campaign.ts'
import type { ActorHost } from '../../actors/runtime/host.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { createRunners, type Runners } from '../../actors/worker/runners/index.ts'
import type { ExecTemplates } from '../../actors/worker/runners/types.ts'
import { workerActor, WORKER_ACTOR, type WorkerMessage } from '../../actors/worker/worker.ts'
import { replicaActor, REPLICA_ACTOR, type ReplicaMessage } from '../../actors/replica/replica.ts'
import type { CapabilityReport } from '../../protocols/membership/capabilities.ts'
import type { BlobAccess } from '../blobs/access.ts'
import type { BlobService } from '../blobs/service.ts'
import type { Storage } from '../storage.ts'
import { delay } from '../../protocols/common/signals.ts'
import { ExportReplySchema } from '../../protocols/campaign/replica.ts'
import { describeError, UnavailableError } from '../../actors/runtime/errors.ts'
import { exportResults, type ExportFormat } from './export.ts'
import { loadCampaignFile, loadCampaignObject, resolveCampaign } from './load.ts'
import type { CampaignApi, SubmitBody } from './routes.ts'

/** how long an ended campaign's summary may take to appear */
const SUMMARY_WAIT_MS = 30_000
/** asking a peer for a campaign's results, and fetching them */
const EXPORT_TIMEOUT_MS = 120_000

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
  /** exports made for peers (`zp results` on a node holding no copy): how many are out per blob */
  readonly #exportsHeld = new Map<string, number>()
  #exports = 0

  constructor (init: CampaignServiceInit) {
    this.#init = init
    this.#store = new CampaignStore(init.storage)
    this.#copies = new CampaignStore(init.storage, 'replica-')
    this.#coordinator = { peer: init.self, name: COORDINATOR_ACTOR }
    this.#worker = { peer: init.self, name: WORKER_ACTOR }
    this.#runners = createRunners({ capabilities: init.capabilities, slots: init.slots, execTemplates: init.execTemplates, log: init.log.child({ component: 'runner' }) })
    const { blobs, access } = init
    init.host.spawn(COORDINATOR_ACTOR, coordinatorActor({
      self: init.self,
      selfName: init.name,
      version: init.version,
      store: this.#store,
      runsDir: init.runsDir,
      peers: init.peers,
      defaultReplicas: init.defaultReplicas,
      blobs: {
        grant: (scope, peer, hashes) => { access.grant(scope, peer, hashes) },
        revoke: (scope) => { access.revoke(scope) },
        path: (hash) => blobs.store.path(hash),
        fetch: async (peer, ref, signal) => await readFile(await blobs.fetch(peer, { hash: ref.hash, size: ref.size, name: ref.name }, { signal })),
        offer: async (peer, bytes, name) => {
          const ref = await blobs.store.putBytes(bytes, name)
          access.grant(`replica:${ref.hash}`, peer, [ref.hash])
          return ref
        }
      }
    }))
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
      exportFor: async (peer, id, format) => {
        const rows = await this.#heldResults(id, format)
        if (rows == null) return null
        const ref = await blobs.store.putStream(utf8Chunks(rows), `${id}.${format}`)
        const scope = `export:${ref.hash}:${++this.#exports}`
        access.grant(scope, peer, [ref.hash])
        this.#exportsHeld.set(ref.hash, (this.#exportsHeld.get(ref.hash) ?? 0) + 1)
        // an export is made for one fetch: gone once the asker has had time for it
        setTimeout(() => {
          access.revoke(scope)
          const left = (this.#exportsHeld.get(ref.hash) ?? 1) - 1
          if (left > 0) {
            this.#exportsHeld.set(ref.hash, left)
            return
          }
          this.#exportsHeld.delete(ref.hash)
          blobs.store.remove(ref.hash).catch((err: unknown) => { init.log.warn({ campaign: id, err: describeError(err) }, 'cannot remove an export made for a peer') })
        }, EXPORT_TIMEOUT_MS * 2).unref()
        return ref
      },
      takeover: async (msg) => { await init.host.tell(this.#coordinator, { type: 'takeover', ...msg } satisfies CoordinatorMessage) }
    }))
    // blobs are immutable and named by their hash: once fetched and checked, a path stays good
    const ready = new Map<string, string>()
    init.host.spawn(WORKER_ACTOR, workerActor({
      slots: init.slots,
      runners: this.#runners,
      setBusy: init.setBusy,
      isTrusted: init.isTrusted,
      blobs: {
        fetch: async (from, ref, signal) => {
          const known = ready.get(ref.hash)
          if (known != null) return known
          await blobs.fetch(from, { hash: ref.hash, size: ref.size, name: ref.name }, { signal })
          // modules are import()ed: they need a name ending in .mjs
          const path = ref.name.endsWith('.mjs') || ref.name.endsWith('.js') ? await blobs.store.importablePath(ref.hash) : blobs.store.path(ref.hash)
          ready.set(ref.hash, path)
          return path
        },
        fetchSlice: async (from, ref, range, signal) => {
          // the whole data set is here (this node coordinates, or fetched it before): read the range in place
          if (ready.has(ref.hash) || await blobs.store.has(ref.hash)) {
            ready.set(ref.hash, blobs.store.path(ref.hash))
            return { path: blobs.store.path(ref.hash), start: range.start, end: range.end }
          }
          const path = await blobs.fetch(from, { hash: ref.hash, range, name: `${ref.name}[${range.start},${range.end})` }, { signal })
          return { path, start: 0, end: range.end - range.start }
        },
        offer: async (peer, bytes, name) => {
          const ref = await blobs.store.putBytes(bytes, name)
          access.grant(`result:${ref.hash}`, peer, [ref.hash])
          return ref
        }
      }
    }))
    // first in the coordinator's mailbox: no result reaches it before the campaigns it belongs to are back
    if (init.resume !== false) void init.host.tell(this.#coordinator, { type: 'resume-all' } satisfies CoordinatorMessage).catch(() => {})
  }

  async submit (body: SubmitBody): Promise<CampaignStatus> {
    const store = this.#init.blobs.store
    const loaded = 'file' in body
      ? await loadCampaignFile(body.file, { store })
      : await loadCampaignObject(body.spec, body.baseDir, {}, 'campaign', { store })
    const spec = await resolveCampaign(loaded, async (path, name) => await this.#init.blobs.store.putFile(path, name))
    const specHash = sha256(new TextEncoder().encode(JSON.stringify(spec)))
    const id = `c-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`
    return await this.#init.host.ask<CampaignStatus>(this.#coordinator, {
      type: 'submit', id, spec, specHash, offsets: loaded.data?.offsets, sliceHashes: loaded.data?.sliceHashes
    } satisfies CoordinatorMessage, { timeoutMs: 60_000 })
  }

  async list (): Promise<CampaignStatus[]> {
    return await this.#init.host.ask<CampaignStatus[]>(this.#coordinator, { type: 'list' } satisfies CoordinatorMessage)
  }

  /**
   * From any node: this node's coordinator, else its replica of the
   * campaign, else whichever peer knows it (its coordinator or a replica).
   */
  async status (id: string): Promise<CampaignStatus | null> {
    const own = await this.#init.host.ask<CampaignStatus | null>(this.#coordinator, { type: 'status', id } satisfies CoordinatorMessage)
    if (own != null) return own
    const copy = await this.#init.host.ask<CampaignStatus | null>({ peer: this.#init.self, name: REPLICA_ACTOR }, { type: 'status', campaignId: id } satisfies ReplicaMessage)
    if (copy != null && copy.coordinator === this.#init.self) return copy
    // the live view is the coordinator's: ask the peers, the coordinator's answer first
    const peers = (await this.#init.peers()).filter(p => !p.self && p.state !== 'dead')
    const answers = await Promise.allSettled(peers.map(async p => await this.#init.host.ask<CampaignStatus | null>(
      { peer: p.peerId, name: REPLICA_ACTOR }, { type: 'lookup', campaignId: id } satisfies ReplicaMessage, { timeoutMs: 5000 })))
    const known = answers.flatMap((a, i) => a.status === 'fulfilled' && a.value != null && typeof a.value === 'object' ? [{ from: peers[i]!.peerId, status: a.value }] : [])
    return known.find(k => k.status.coordinator === k.from)?.status ?? copy ?? known[0]?.status ?? null
  }

  async resume (id: string): Promise<CampaignStatus | null> {
    if (await this.#store.campaign(id) == null) return null
    return await this.#init.host.ask<CampaignStatus>(this.#coordinator, { type: 'resume', id } satisfies CoordinatorMessage, { timeoutMs: 60_000 })
  }

  async auditVerify (id: string): Promise<AuditVerdict | null> {
    const record = await this.#store.campaign(id)
    if (record == null) return null
    return await verifyAudit(join(record.runDir, 'audit.jsonl'), FINAL_STATES.has(record.state) ? record.auditHead : undefined)
  }

  async cancel (id: string): Promise<CampaignStatus | null> {
    return await this.#init.host.ask<CampaignStatus | null>(this.#coordinator, { type: 'cancel', id } satisfies CoordinatorMessage)
  }

  /**
   * From any node: the coordinator's store when this node coordinates the
   * campaign, else this node's replica of it, else an export made by the
   * coordinator (or, failing it, a replica) and fetched from there as a blob.
   */
  async results (id: string, format: ExportFormat): Promise<AsyncIterable<string> | null> {
    return await this.#heldResults(id, format) ?? await this.#fetchedResults(id, format)
  }

  async #heldResults (id: string, format: ExportFormat): Promise<AsyncIterable<string> | null> {
    const own = await this.#store.campaign(id)
    if (own != null && own.movedTo == null) return exportResults(this.#store, id, format)
    if (await this.#copies.campaign(id) != null) return exportResults(this.#copies, id, format)
    return own != null ? exportResults(this.#store, id, format) : null
  }

  async #fetchedResults (id: string, format: ExportFormat): Promise<AsyncIterable<string> | null> {
    const status = await this.status(id)
    if (status == null) return null
    const holders = [...new Set([status.coordinator, ...status.replicas ?? []])].filter(p => p !== this.#init.self)
    const failures: string[] = []
    for (const peer of holders) {
      try {
        const reply = ExportReplySchema.parse(await this.#init.host.ask(
          { peer, name: REPLICA_ACTOR }, { type: 'export', campaignId: id, format } satisfies ReplicaMessage, { timeoutMs: EXPORT_TIMEOUT_MS }))
        if (reply == null) {
          failures.push(`${peer}: holds no copy`)
          continue
        }
        const { hash, size, name } = reply.blob
        const path = await this.#init.blobs.fetch(peer, { hash, size, name }, { signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS) })
        return readThenRemove(path, async () => { await this.#init.blobs.store.remove(hash) })
      } catch (err) {
        failures.push(`${peer}: ${describeError(err)}`)
      }
    }
    throw new UnavailableError(`campaign ${id} is coordinated by ${status.coordinator}, but no peer holding it sent its results (${failures.join('; ') || 'no other peer holds it'}); try again, or ask on the coordinator's node`)
  }

  /**
   * summary.md of an ended campaign. The end is reported as soon as the last
   * result is stored and the summary follows it, so an ended campaign's summary
   * is waited for a little.
   */
  async summary (id: string): Promise<string | null> {
    const status = await this.status(id)
    if (status == null || !FINAL_STATES.has(status.state)) return null
    const file = join(status.runDir, 'summary.md')
    const until = Date.now() + SUMMARY_WAIT_MS
    for (;;) {
      const text = await readFile(file, 'utf8').catch(() => null)
      if (text != null || Date.now() > until) return text
      await delay(50)
    }
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

/** A fetched export's text; the file goes once it has been read (or the reader stopped). */
async function * readThenRemove (path: string, remove: () => Promise<void>): AsyncGenerator<string> {
  try {
    for await (const chunk of createReadStream(path, { encoding: 'utf8' })) yield chunk as string
  } finally {
    await remove().catch(() => {})
  }
}

/** Text chunks as UTF-8 bytes, gathered into writes of about 64 KiB. */
async function * utf8Chunks (text: AsyncIterable<string>): AsyncGenerator<Uint8Array> {
  let pending = ''
  for await (const chunk of text) {
    pending += chunk
    if (pending.length >= 64 * 1024) {
      yield Buffer.from(pending, 'utf8')
      pending = ''
    }
  }
  if (pending !== '') yield Buffer.from(pending, 'utf8')
}

function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}
