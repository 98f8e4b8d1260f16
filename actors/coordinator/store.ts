import type { Storage, Sublevel } from '../../node/storage.ts'
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

  constructor (storage: Storage) {
    this.#storage = storage
    this.#results = storage.sublevel<StoredResult>('results')
    this.#campaigns = storage.sublevel<CampaignRecord>('campaigns')
    this.#shards = storage.sublevel<ShardState>('shards')
    this.#leases = storage.sublevel<StoredLease>('leases')
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
