import { join } from 'node:path'
import { REPLICA_ACTOR } from '../../protocols/campaign/replica.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import { AuditLog } from './audit.ts'
import { AuditTrail } from './audit-trail.ts'
import { CampaignRun, type DeadLetter } from './campaign.ts'
import { ShardPlan } from './plan.ts'
import { ReplicaGroup } from './replication.ts'
import { CampaignSession, type SessionIO } from './session.ts'
import type { CampaignRecord, StoredLease } from './store.ts'

/** What opening sessions needs beyond what each session gets. */
export interface OpenIO extends SessionIO {
  runsDir: string
  /** replicas of a campaign whose spec does not say */
  defaultReplicas: number
  blobs: SessionIO['blobs'] & {
    offer: (peer: string, bytes: Uint8Array, name: string) => Promise<{ hash: string, size: number, name: string }>
  }
  /** the replica group found another coordinator of a higher term */
  superseded: (id: string, by: { coordinator?: string, term: number }) => void
  /** the replica group confirms this coordinator again: time to schedule */
  leading: () => void
}

export interface SubmitCampaign {
  type: 'submit'
  id: string
  spec: CampaignSpec
  specHash: string
  /** rows campaigns: shard byte offsets of the data set, and each shard's sha256 */
  offsets?: number[]
  sliceHashes?: string[]
}

export function planOf (spec: CampaignSpec, offsets?: number[]): ShardPlan {
  return new ShardPlan(spec.shards, { rows: spec.workload.kind === 'onnx' ? spec.workload.data.rows : undefined, offsets })
}

/** A new campaign's session: its record is committed before anything else happens. */
export async function openNew (msg: SubmitCampaign, io: OpenIO, now: number): Promise<CampaignSession> {
  const plan = planOf(msg.spec, msg.offsets)
  const run = new CampaignRun({ id: msg.id, spec: msg.spec, plan, createdAt: now })
  const runDir = join(io.runsDir, msg.id)
  const audit = new AuditTrail(await AuditLog.open(join(runDir, 'audit.jsonl'), auditFailed(io, msg.id)), () => io.ctx.now())
  const record: CampaignRecord = {
    id: msg.id,
    spec: msg.spec,
    specHash: msg.specHash,
    createdAt: now,
    state: run.state,
    shards: plan.count,
    done: 0,
    deadLetters: [],
    runDir,
    offsets: msg.offsets,
    sliceHashes: msg.sliceHashes,
    epochReserved: 0,
    term: 0,
    replicas: []
  }
  const session = new CampaignSession({ run, record, audit, io })
  audit.append({ type: 'submitted', name: msg.spec.name, specHash: msg.specHash, shards: plan.count, priority: msg.spec.priority })
  await session.saveRecord()
  // after the record is stored: a replica starts from a snapshot of it
  startReplication(session, io, 0, [])
  return session
}

/**
 * A session for a campaign from its checkpoint (a restart, `zp resume`, a
 * supervised restart of the coordinator, or a takeover): the shards with a
 * result are done and never run again, failure counts and dead letters stand,
 * epochs continue above the reserved ones, and every other shard (including
 * those leased when the coordinator stopped) is pending again; the holders of
 * those leases may still deliver.
 */
export async function openFromRecord (record: CampaignRecord, io: OpenIO, now: number, takeover?: { term: number, replicas: string[] }): Promise<{ session: CampaignSession, leases: StoredLease[] }> {
  const { store } = io
  const run = new CampaignRun({ id: record.id, spec: record.spec, plan: planOf(record.spec, record.offsets), createdAt: record.createdAt })
  for await (const index of store.doneShards(record.id)) run.restoreDone(index)
  const failures: Array<[number, number, string[]]> = []
  const dead: DeadLetter[] = []
  const checkpoints = new Map<number, unknown>()
  for await (const { index, state } of store.shards(record.id)) {
    if (state.failures > 0) failures.push([index, state.failures, state.failedOn ?? []])
    if (state.dead != null) dead.push({ index, ...state.dead })
    if (state.checkpoint !== undefined && !run.isDone(index)) checkpoints.set(index, state.checkpoint)
  }
  const leases: StoredLease[] = []
  for await (const lease of store.leases(record.id)) leases.push(lease)
  run.restore({ state: record.state, failures, dead, epoch: record.epochReserved ?? 0, startedAt: record.startedAt }, now)
  const audit = new AuditTrail(await AuditLog.open(join(record.runDir, 'audit.jsonl'), auditFailed(io, record.id)), () => io.ctx.now())
  const term = takeover?.term ?? record.term ?? 0
  const session = new CampaignSession({ run, record: { ...record, term, movedTo: undefined }, audit, io })
  for (const l of leases) session.rememberHolder(l.index, l.worker)
  for (const [index, state] of checkpoints) session.checkpoints.set(index, state)
  return { session, leases }
}

/** Streams the campaign's checkpoints to its replicas, and fences the coordinator by their confirmations. */
export function startReplication (session: CampaignSession, io: OpenIO, term: number, members: string[]): void {
  session.group?.close()
  session.group = undefined
  const desired = session.spec.replicas ?? io.defaultReplicas
  if (desired === 0 && term === 0) return
  const id = session.id
  const files = session.files()
  session.group = new ReplicaGroup({ campaignId: id, term, desired, members }, {
    log: io.log,
    ask: async (peer, msg, timeoutMs) => await io.ctx.ask({ peer, name: REPLICA_ACTOR }, msg, { timeoutMs, signal: io.ctx.signal }),
    snapshot: async () => await io.store.snapshot(id),
    files: () => files,
    offer: async (peer, bytes, name) => await io.blobs.offer(peer, bytes, name),
    grantFiles: (peer) => { io.blobs.grant(id, peer, files.map(f => f.hash)) },
    isDead: (peer) => { const p = io.peers().find(x => x.peerId === peer); return p == null || p.state === 'dead' },
    pickReplacement: (exclude) => io.peers()
      .filter(p => !p.self && p.peerId !== io.self && p.state === 'alive' && !exclude.has(p.peerId))
      .sort((a, b) => a.peerId.localeCompare(b.peerId))[0]?.peerId,
    membersChanged: (replicas) => {
      session.record = { ...session.record, replicas }
      session.audit.append({ type: 'replicas', replicas })
      io.log.info({ campaign: id, replicas }, 'campaign replicas')
    },
    leading: () => { io.leading() },
    superseded: (by) => { io.superseded(id, by) }
  })
  session.group.tick(io.ctx.now())
}

function auditFailed (io: SessionIO, campaignId: string): (err: Error) => void {
  return (err) => { io.log.error({ campaign: campaignId, err: err.message }, 'cannot write the audit log (is the disk full?); a gap record will say how many records were lost') }
}
