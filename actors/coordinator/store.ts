import type { Storage, Sublevel } from '../../node/storage.ts'
import type { ReplicaOp, Snapshot } from '../../protocols/campaign/replica.ts'
import type { CampaignSpec } from '../../protocols/campaign/spec.ts'
import type { CampaignState, DeadLetter } from './campaign.ts'

/** One shard's stored result. */
export interface StoredResult {
  rows: unknown[]
  info?: Record<string, unknown>
  worker: string
  attempt: number
  durationMs: number
}

/** What is kept about a campaign beyond its run: enough to list it, export it, and resume it after a restart. */
export interface CampaignRecord {
  id: string
  spec: CampaignSpec
  specHash: string
  createdAt: number
  startedAt?: number
  endedAt?: number
  state: CampaignState
  shards: number
  done: number
  deadLetters: DeadLetter[]
  runDir: string
  /** shard byte offsets of a rows campaign's data set, and each shard's sha256 */
  offsets?: number[]
  sliceHashes?: string[]
  /** epochs up to this one may have been granted: a resumed run grants only higher ones */
  epochReserved?: number
  /** hash of the last line of runs/<id>/audit.jsonl: a removed tail is noticed */
  auditHead?: string
  /** how many coordinators the campaign has had before this one (0: the one it was submitted to) */
  term?: number
  /** the peers holding a replica of this state */
  replicas?: string[]
  /** another coordinator took the campaign over (this node's copy is no longer the live one) */
  movedTo?: { peer: string, term: number }
}

/** What a shard has been through beyond its result: failed attempts, death, its module checkpoint. */
export interface ShardState {
  failures: number
  dead?: { attempts: number, error: string }
  checkpoint?: unknown
}

/** A lease in force: its holder may still deliver a result, even across a coordinator restart. */
export interface StoredLease {
  worker: string
  epoch: number
}

type BatchOp = { type: 'put', sublevel: Sublevel<any>, key: string, value: unknown } | { type: 'del', sublevel: Sublevel<any>, key: string }

/** Keys sort as numbers: a fixed width makes LevelDB's order the shard order. */
const key = (campaignId: string, index: number): string => `${campaignId}!${String(index).padStart(16, '0')}`
const indexOf = (campaignId: string, k: string): number => Number(k.slice(campaignId.length + 1))
const range = (campaignId: string): { gt: string, lt: string } => ({ gt: `${campaignId}!`, lt: `${campaignId}!~` })

/**
 * A coordinator's durable state in the node's LevelDB: results, campaign
 * records, shard states and the leases in force. A result is written before
 * the worker's result is acknowledged (together with the end of its lease), so
 * an acknowledged shard is never lost when the coordinator dies, and a resumed
 * campaign knows every shard it must not run again.
 */
export class CampaignStore {
  readonly #storage: Storage
  readonly #results: Sublevel<StoredResult>
  readonly #campaigns: Sublevel<CampaignRecord>
  readonly #shards: Sublevel<ShardState>
  readonly #leases: Sublevel<StoredLease>

  /** `prefix` keeps a second copy apart in the same database (a node's replicas of other coordinators' campaigns) */
  constructor (storage: Storage, prefix = '') {
    this.#storage = storage
    this.#results = storage.sublevel<StoredResult>(`${prefix}results`)
    this.#campaigns = storage.sublevel<CampaignRecord>(`${prefix}campaigns`)
    this.#shards = storage.sublevel<ShardState>(`${prefix}shards`)
    this.#leases = storage.sublevel<StoredLease>(`${prefix}leases`)
  }

  /** Replicated changes, applied in one write together with `extra` (the replica's own bookkeeping). */
  async apply (campaignId: string, ops: ReplicaOp[], extra: Array<{ sublevel: Sublevel<unknown>, key: string, value: unknown }> = []): Promise<void> {
    const batch: BatchOp[] = []
    for (const op of ops) {
      switch (op.op) {
        case 'record': batch.push({ type: 'put', sublevel: this.#campaigns, key: op.record.id, value: op.record }); break
        case 'result':
          batch.push({ type: 'put', sublevel: this.#results, key: key(campaignId, op.index), value: op.result })
          batch.push({ type: 'del', sublevel: this.#leases, key: key(campaignId, op.index) })
          break
        case 'shard': batch.push({ type: 'put', sublevel: this.#shards, key: key(campaignId, op.index), value: op.state }); break
        case 'leases':
          for (const l of op.put) batch.push({ type: 'put', sublevel: this.#leases, key: key(campaignId, l.index), value: { worker: l.worker, epoch: l.epoch } })
          for (const i of op.del) batch.push({ type: 'del', sublevel: this.#leases, key: key(campaignId, i) })
          break
      }
    }
    for (const e of extra) batch.push({ type: 'put', sublevel: e.sublevel, key: e.key, value: e.value })
    await this.#storage.write(async () => { await this.#storage.db.batch(batch as never) })
  }

  /** Everything kept of one campaign, as a replica starts from it. */
  async snapshot (campaignId: string): Promise<Snapshot | undefined> {
    const record = await this.campaign(campaignId)
    if (record == null) return undefined
    const results: Snapshot['results'] = []
    for await (const { index, result } of this.results(campaignId)) results.push([index, result])
    const shards: Snapshot['shards'] = []
    for await (const { index, state } of this.shards(campaignId)) shards.push([index, state])
    const leases: Snapshot['leases'] = []
    for await (const lease of this.leases(campaignId)) leases.push(lease)
    return { record: record as Snapshot['record'], results, shards, leases }
  }

  /** Replaces what is kept of the snapshot's campaign with it, `extra` in the same write. */
  async restore (snapshot: Snapshot, extra: Array<{ sublevel: Sublevel<unknown>, key: string, value: unknown }> = []): Promise<void> {
    const id = snapshot.record.id
    const batch: BatchOp[] = []
    for (const sub of [this.#results, this.#shards, this.#leases] as Array<Sublevel<unknown>>) {
      for await (const k of sub.keys(range(id))) batch.push({ type: 'del', sublevel: sub, key: k })
    }
    await this.#storage.write(async () => { await this.#storage.db.batch(batch as never) })
    await this.apply(id, [
      { op: 'record', record: snapshot.record },
      ...snapshot.results.map(([index, result]) => ({ op: 'result' as const, index, result })),
      ...snapshot.shards.map(([index, state]) => ({ op: 'shard' as const, index, state })),
      { op: 'leases', put: snapshot.leases, del: [] }
    ], extra)
  }

  /** Removes what is kept of a campaign (a replica that is no longer one). */
  async drop (campaignId: string): Promise<void> {
    const batch: BatchOp[] = [{ type: 'del', sublevel: this.#campaigns as Sublevel<unknown>, key: campaignId }]
    for (const sub of [this.#results, this.#shards, this.#leases] as Array<Sublevel<unknown>>) {
      for await (const k of sub.keys(range(campaignId))) batch.push({ type: 'del', sublevel: sub, key: k })
    }
    await this.#storage.write(async () => { await this.#storage.db.batch(batch as never) })
  }

  /** The result, and the end of the lease it answers, in one write. */
  async putResult (campaignId: string, index: number, result: StoredResult): Promise<void> {
    await this.#storage.write(async () => {
      await this.#storage.db.batch([
        { type: 'put', sublevel: this.#results, key: key(campaignId, index), value: result },
        { type: 'del', sublevel: this.#leases, key: key(campaignId, index) }
      ])
    })
  }

  async result (campaignId: string, index: number): Promise<StoredResult | undefined> {
    return await this.#results.get(key(campaignId, index))
  }

  /** Every stored result of a campaign, in shard order. */
  async * results (campaignId: string): AsyncGenerator<{ index: number, result: StoredResult }> {
    for await (const [k, result] of this.#results.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), result }
  }

  /** The shards that have a result, without reading the results. */
  async * doneShards (campaignId: string): AsyncGenerator<number> {
    for await (const k of this.#results.keys(range(campaignId))) yield indexOf(campaignId, k)
  }

  async putShard (campaignId: string, index: number, state: ShardState): Promise<void> {
    await this.#storage.write(async () => { await this.#shards.put(key(campaignId, index), state) })
  }

  async shard (campaignId: string, index: number): Promise<ShardState | undefined> {
    return await this.#shards.get(key(campaignId, index))
  }

  async * shards (campaignId: string): AsyncGenerator<{ index: number, state: ShardState }> {
    for await (const [k, state] of this.#shards.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), state }
  }

  /** Records leases before they are sent, and the epoch reservation they may need, in one write. */
  async putLeases (campaignId: string, leases: Array<{ index: number } & StoredLease>, record?: CampaignRecord): Promise<void> {
    await this.#storage.write(async () => {
      await this.#storage.db.batch([
        ...leases.map(l => ({ type: 'put' as const, sublevel: this.#leases, key: key(campaignId, l.index), value: { worker: l.worker, epoch: l.epoch } })),
        ...(record != null ? [{ type: 'put' as const, sublevel: this.#campaigns, key: record.id, value: record }] : [])
      ])
    })
  }

  async delLeases (campaignId: string, indexes: number[]): Promise<void> {
    await this.#storage.write(async () => { await this.#leases.batch(indexes.map(i => ({ type: 'del' as const, key: key(campaignId, i) }))) })
  }

  async * leases (campaignId: string): AsyncGenerator<{ index: number } & StoredLease> {
    for await (const [k, lease] of this.#leases.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), ...lease }
  }

  async saveCampaign (record: CampaignRecord): Promise<void> {
    await this.#storage.write(async () => { await this.#campaigns.put(record.id, record) })
  }

  async campaign (id: string): Promise<CampaignRecord | undefined> {
    return await this.#campaigns.get(id)
  }

  async campaigns (): Promise<CampaignRecord[]> {
    const out: CampaignRecord[] = []
    for await (const record of this.#campaigns.values()) out.push(record)
    return out.sort((a, b) => b.createdAt - a.createdAt)
  }
}
