import type { Storage, Sublevel } from '../../node/storage.ts'
import type { CampaignRecord, ReplicaOp, ShardRecord, Snapshot, StoredLease, StoredResult } from '../../protocols/campaign/replica.ts'

export type { CampaignRecord, ShardRecord, StoredLease, StoredResult } from '../../protocols/campaign/replica.ts'

type BatchOp = { type: 'put', sublevel: Sublevel<any>, key: string, value: unknown } | { type: 'del', sublevel: Sublevel<any>, key: string }
type Extra = Array<{ sublevel: Sublevel<unknown>, key: string, value: unknown }>

/** Keys sort as numbers: a fixed width makes LevelDB's order the shard order. */
const key = (campaignId: string, index: number): string => `${campaignId}!${String(index).padStart(16, '0')}`
const indexOf = (campaignId: string, k: string): number => Number(k.slice(campaignId.length + 1))
const range = (campaignId: string): { gt: string, lt: string } => ({ gt: `${campaignId}!`, lt: `${campaignId}!~` })

/**
 * A campaign's durable state in the node's LevelDB: its record, results,
 * shard records and the leases in force. Every change is a replica op,
 * applied by `apply`: the coordinator and its replicas run the same code on
 * the same ops, so a replica's copy is the coordinator's state, not an
 * imitation of it. A result is stored (with the end of its lease) before its
 * worker is acknowledged, so an acknowledged shard is never lost, and a
 * resumed campaign knows every shard it must not run again.
 */
export class CampaignStore {
  readonly #storage: Storage
  readonly #results: Sublevel<StoredResult>
  readonly #campaigns: Sublevel<CampaignRecord>
  readonly #shards: Sublevel<ShardRecord>
  readonly #leases: Sublevel<Omit<StoredLease, 'index'>>

  /** `prefix` keeps a second copy apart in the same database (a node's replicas of other coordinators' campaigns) */
  constructor (storage: Storage, prefix = '') {
    this.#storage = storage
    this.#results = storage.sublevel<StoredResult>(`${prefix}results`)
    this.#campaigns = storage.sublevel<CampaignRecord>(`${prefix}campaigns`)
    this.#shards = storage.sublevel<ShardRecord>(`${prefix}shards`)
    this.#leases = storage.sublevel<Omit<StoredLease, 'index'>>(`${prefix}leases`)
  }

  /** Changes of one campaign, in one write together with `extra` (a replica's own bookkeeping). */
  async apply (campaignId: string, ops: ReplicaOp[], extra: Extra = []): Promise<void> {
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
    if (batch.length === 0) return
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
    return { record, results, shards, leases }
  }

  /** Replaces what is kept of the snapshot's campaign with it, `extra` in the same write. */
  async restore (snapshot: Snapshot, extra: Extra = []): Promise<void> {
    const id = snapshot.record.id
    await this.#write(await this.#deletions(id))
    await this.apply(id, [
      { op: 'record', record: snapshot.record },
      ...snapshot.results.map(([index, result]) => ({ op: 'result' as const, index, result })),
      ...snapshot.shards.map(([index, state]) => ({ op: 'shard' as const, index, state })),
      { op: 'leases', put: snapshot.leases, del: [] }
    ], extra)
  }

  /** Removes what is kept of a campaign (a replica that is no longer one). */
  async drop (campaignId: string): Promise<void> {
    await this.#write([{ type: 'del', sublevel: this.#campaigns, key: campaignId }, ...await this.#deletions(campaignId)])
  }

  async #deletions (campaignId: string): Promise<BatchOp[]> {
    const batch: BatchOp[] = []
    for (const sub of [this.#results, this.#shards, this.#leases] as Array<Sublevel<unknown>>) {
      for await (const k of sub.keys(range(campaignId))) batch.push({ type: 'del', sublevel: sub, key: k })
    }
    return batch
  }

  async #write (batch: BatchOp[]): Promise<void> {
    await this.#storage.write(async () => { await this.#storage.db.batch(batch as never) })
  }

  async result (campaignId: string, index: number): Promise<StoredResult | undefined> {
    return await this.#results.get(key(campaignId, index))
  }

  /** Every stored result of a campaign, in shard order. */
  async * results (campaignId: string): AsyncGenerator<{ index: number, result: StoredResult }> {
    for await (const [k, result] of this.#results.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), result }
  }

  /** The shards that have a result, in order, without reading the results. */
  async * doneShards (campaignId: string): AsyncGenerator<number> {
    for await (const k of this.#results.keys(range(campaignId))) yield indexOf(campaignId, k)
  }

  async shard (campaignId: string, index: number): Promise<ShardRecord | undefined> {
    return await this.#shards.get(key(campaignId, index))
  }

  async * shards (campaignId: string): AsyncGenerator<{ index: number, state: ShardRecord }> {
    for await (const [k, state] of this.#shards.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), state }
  }

  async * leases (campaignId: string): AsyncGenerator<StoredLease> {
    for await (const [k, lease] of this.#leases.iterator(range(campaignId))) yield { index: indexOf(campaignId, k), ...lease }
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
