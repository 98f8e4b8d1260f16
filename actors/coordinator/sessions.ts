import type { Logger } from 'pino'
import { DETACHED_WORKER, type WorkerRequest } from '../../protocols/campaign/messages.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import { describeError, InvalidMessageError, NoSuchActorError, UnavailableError } from '../runtime/errors.ts'
import type { PeerView } from '../membership/membership.ts'
import { Later } from '../runtime/types.ts'
import { finalize } from './finalize.ts'
import { announce, type LeasingIO } from './leasing.ts'
import { openFromRecord, openNew, startReplication, type OpenIO, type SubmitCampaign } from './open.ts'
import { writeConfig } from './reports.ts'
import type { CampaignSession } from './session.ts'
import { isFinal } from './states.ts'
import { recordedStatus, type CampaignStatus } from './status.ts'
import type { CampaignRecord } from './store.ts'

export interface SessionsIO extends OpenIO {
  version: string
  leasing: LeasingIO
  /** tells a worker (cancel), logging a failure */
  tellWorker: (worker: string, msg: WorkerRequest) => void
  /** the coordinator's current view of the peers (refreshed before a session opens) */
  refreshPeers: () => Promise<PeerView[]>
  blobPath: (hash: string) => string
  /** a session changed: schedule */
  changed: (session: CampaignSession) => void
  /** told when a campaign starts running here and when it has ended (burst capacity follows it) */
  lifecycle?: {
    started: (id: string, spec: CampaignSpec) => void
    ended: (id: string, state: string) => void
  }
}

type Takeover = { term: number, replicas: string[], previous: string }

/**
 * The coordinator's campaigns, one session each, and their lives: submitted,
 * resumed from the store (a restart, `zp resume`, a supervised restart of the
 * coordinator), taken over from a dead coordinator, stopped (--no-resume),
 * superseded by another coordinator, cancelled, and ended (written once).
 */
export class Sessions {
  readonly #io: SessionsIO
  readonly #log: Logger
  readonly #live = new Map<string, CampaignSession>()
  readonly #ending = new Map<string, Promise<void>>()

  constructor (io: SessionsIO) {
    this.#io = io
    this.#log = io.log
  }

  get (id: string): CampaignSession | undefined {
    return this.#live.get(id)
  }

  values (): IterableIterator<CampaignSession> {
    return this.#live.values()
  }

  async closeAll (): Promise<void> {
    await Promise.all([...this.#live.values()].map(async s => { await s.close() }))
    this.#live.clear()
  }

  async submit (msg: SubmitCampaign, now: number): Promise<CampaignStatus> {
    let session: CampaignSession | undefined
    try {
      const peers = await this.#io.refreshPeers()
      session = await openNew(msg, this.#io, now)
      await writeConfig(session.runDir, {
        id: msg.id,
        specHash: msg.specHash,
        spec: msg.spec,
        coordinator: { peerId: this.#io.self, name: this.#io.selfName },
        version: this.#io.version,
        createdAt: now,
        hardware: peers.filter(p => p.state !== 'dead').map(p => ({
          peerId: p.peerId, name: p.name, state: p.state, slots: p.slots, host: p.capabilities?.host ?? null,
          capabilities: Object.entries(p.capabilities?.capabilities ?? {}).filter(([, c]) => c.status === 'ok').map(([k]) => k)
        }))
      })
    } catch (err) {
      await session?.close()
      throw new UnavailableError(`cannot start campaign ${msg.spec.name}: ${describeError(err)}`)
    }
    this.#live.set(session.id, session)
    this.#log.info({ campaign: session.id, name: msg.spec.name, shards: session.run.total, priority: msg.spec.priority }, `campaign ${msg.spec.name} submitted`)
    this.#io.lifecycle?.started(session.id, session.spec)
    this.changed(session)
    return session.status(now)
  }

  /** null also for a campaign another coordinator took over: its status is theirs to give */
  async status (id: string, now: number): Promise<CampaignStatus | null> {
    const session = this.#live.get(id)
    if (session != null) return session.status(now)
    const rec = await this.#io.store.campaign(id)
    return rec != null && rec.movedTo == null ? { ...recordedStatus(rec, this.#io.self), coordinatorName: this.#io.selfName } : null
  }

  async list (now: number): Promise<CampaignStatus[]> {
    const live = [...this.#live.values()].map(s => s.status(now))
    const recorded = (await this.#io.store.campaigns()).filter(r => !this.#live.has(r.id)).map(r => r.movedTo != null
      ? { ...recordedStatus(r, r.movedTo.peer), waiting: `taken over by ${r.movedTo.peer} (term ${r.movedTo.term}); ask that node` }
      : { ...recordedStatus(r, this.#io.self), coordinatorName: this.#io.selfName })
    return [...live, ...recorded].sort((a, b) => b.createdAt - a.createdAt)
  }

  /** Stops leasing, aborts running shards (finished ones are kept); answered once the end is written, the mailbox going on meanwhile. */
  async cancel (id: string, now: number): Promise<CampaignStatus | Later<CampaignStatus> | null> {
    let session = this.#live.get(id)
    if (session == null) {
      const rec = await this.#io.store.campaign(id)
      if (rec?.state !== 'STOPPED') return await this.status(id, now)
      // a stopped campaign is cancelled through a session opened from its record
      session = await this.#open(rec, now)
    }
    const leases = session.run.cancel(now)
    if (leases == null) return session.status(now)
    session.audit.append({ type: 'cancelled', aborted: leases.map(l => l.index), done: session.run.doneCount })
    session.deleteLeases(leases.map(l => l.index))
    const byWorker = new Map<string, number[]>()
    for (const l of leases) byWorker.set(l.worker, [...byWorker.get(l.worker) ?? [], l.index])
    for (const [worker, shards] of byWorker) this.#io.tellWorker(worker, { type: 'cancel', campaignId: id, shards })
    this.#log.info({ campaign: id, aborted: leases.length, done: session.run.doneCount }, 'campaign cancelled; finished shards kept')
    const cancelled = session
    return new Later(this.end(cancelled).then(() => cancelled.status(this.#io.ctx.now())))
  }

  /** A session changed: if its campaign is settled, write its end; schedule either way. */
  changed (session: CampaignSession): void {
    if (session.run.finished) void this.end(session)
    this.#io.changed(session)
  }

  /**
   * Writes a campaign's end, once, then lets the session go: its record
   * answers for it from then on, and its files are no longer offered to the
   * workers (a result arriving after the end is answered stale).
   */
  async end (session: CampaignSession): Promise<void> {
    if (session.closed) return
    let ending = this.#ending.get(session.id)
    if (ending == null) {
      ending = finalize(session, {
        self: this.#io.self,
        store: this.#io.store,
        log: this.#log,
        now: () => this.#io.ctx.now(),
        blobPath: this.#io.blobPath,
        peerNames: () => new Map(this.#io.peers().map(p => [p.peerId, p.name]))
      }).catch((err: unknown) => {
        this.#log.error({ campaign: session.id, err: describeError(err) }, 'cannot write the end of the campaign (summary, record); it is reported ended anyway')
        session.reported = true
      }).then(async () => {
        if (this.#live.get(session.id) === session) this.#live.delete(session.id)
        await session.close()
        this.#ending.delete(session.id)
        this.#io.lifecycle?.ended(session.id, session.run.state)
      })
      this.#ending.set(session.id, ending)
    }
    await ending
  }

  /** Every unfinished campaign of this node, picked up from the store. */
  async resumeAll (): Promise<void> {
    for (const record of await this.#io.store.campaigns()) {
      if (isFinal(record.state) || record.state === 'STOPPED' || record.movedTo != null) continue
      await this.#open(record, this.#io.ctx.now()).catch((err: unknown) => {
        this.#log.error({ campaign: record.id, err: describeError(err) }, 'cannot resume campaign')
      })
    }
  }

  /** zp-node start --no-resume: every unfinished campaign is marked stopped, with its true counts, until `zp resume`. */
  async stopAll (): Promise<void> {
    for (const record of await this.#io.store.campaigns()) {
      if (isFinal(record.state) || record.state === 'STOPPED' || record.movedTo != null) continue
      const { session } = await openFromRecord(record, this.#io, this.#io.ctx.now())
      session.run.stop()
      session.audit.append({ type: 'stopped', done: session.run.doneCount, reason: 'the node started with --no-resume' })
      await session.saveRecord()
      await session.close()
      this.#log.info({ campaign: record.id, done: session.run.doneCount, total: session.run.total }, `campaign ${record.spec.name} left stopped (--no-resume); zp resume ${record.id} runs the rest`)
    }
  }

  /** Picks a campaign up from its checkpoint (zp resume, or a takeover): shards with a result are never run again. */
  async resume (id: string, now: number, takeover?: Takeover): Promise<CampaignStatus> {
    const live = this.#live.get(id)
    const ended = (state: string): InvalidMessageError => new InvalidMessageError(`campaign ${id} has ended (${state}); there is nothing to resume`)
    if (live != null && takeover == null) {
      if (live.run.finished) throw ended(live.run.state)
      return live.status(now)
    }
    const record = await this.#io.store.campaign(id)
    if (record == null) throw new NoSuchActorError(`no campaign ${id} on this node`)
    if (isFinal(record.state)) throw ended(record.state)
    if (record.movedTo != null && takeover == null) throw new InvalidMessageError(`campaign ${id} was taken over by ${record.movedTo.peer} (term ${record.movedTo.term}); it runs there now`)
    await live?.close()
    const session = await this.#open(record, now, takeover)
    return session.status(now)
  }

  /** Opens a session from the stored record and starts it: replication, the audit, the workers told. */
  async #open (record: CampaignRecord, now: number, takeover?: Takeover): Promise<CampaignSession> {
    const { session, leases } = await openFromRecord(record, this.#io, now, takeover)
    session.run.resume(now)
    // the detached actor's Slurm jobs are not known to a new session: its shards are leased to it again, and it
    // finds what finished (or still runs) in the shared dir
    const detached = leases.filter(l => l.worker === DETACHED_WORKER)
    for (const l of detached) session.run.requeue(l.index, l.epoch)
    if (detached.length > 0) session.deleteLeases(detached.map(l => l.index))
    this.#live.set(session.id, session)
    const peers = await this.#io.refreshPeers()
    startReplication(session, this.#io, session.term, takeover?.replicas ?? record.replicas ?? [])
    const run = session.run
    // the checkpoint's done shards, named: with results audited once a tick, a crash can take the last tick's
    // records with it, and this accounts for every shard whose result the checkpoint holds
    const counts = { done: run.doneCount, doneShards: run.doneRanges(), failed: run.deadCount, pending: run.total - run.doneCount - run.deadCount, leasesInForce: leases.length }
    if (takeover != null) {
      session.audit.append({ type: 'takeover', term: session.term, previous: takeover.previous, replicas: session.replicas, ...counts })
      this.#log.warn({ campaign: session.id, term: session.term, previous: takeover.previous, done: run.doneCount, total: run.total }, `took over campaign ${run.spec.name} from its dead coordinator: ${run.doneCount} of ${run.total} shards already done`)
    } else {
      session.audit.append({ type: 'resumed', replicas: session.replicas, ...counts })
      this.#log.info({ campaign: session.id, done: run.doneCount, total: run.total }, `resumed campaign ${run.spec.name} from its checkpoint: ${run.doneCount} of ${run.total} shards already done`)
    }
    await session.saveRecord()
    if (takeover != null) announce(session, peers, this.#io.leasing)
    this.#io.lifecycle?.started(session.id, session.spec)
    this.changed(session)
    return session
  }

  /** Another coordinator took this campaign over (this node was cut off or thought dead): stop running it here. */
  async superseded (id: string, by: { coordinator?: string, term: number }): Promise<void> {
    const session = this.#live.get(id)
    if (session == null || by.term <= session.term) return
    this.#live.delete(id)
    session.audit.append({ type: 'superseded', by: by.coordinator ?? null, term: by.term, done: session.run.doneCount })
    const movedTo = by.coordinator != null ? { peer: by.coordinator, term: by.term } : undefined
    session.group?.close()
    session.group = undefined
    // this node's copy is no longer the live one: said in the record here, not sent to anyone
    await this.#io.store.apply(id, [{ op: 'record', record: session.recordNow({ movedTo }) }]).catch(() => {})
    await session.close()
    this.#log.warn({ campaign: id, coordinator: by.coordinator, term: by.term }, 'another coordinator has taken this campaign over; it no longer runs here')
  }
}
