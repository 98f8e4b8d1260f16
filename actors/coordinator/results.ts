import type { Db } from '../../node/storage.ts'
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

/** What is kept about a campaign beyond its run: enough to list it and export its results after a restart. */
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
}

function sub<V> (db: Db, name: string) {
  return db.sublevel<string, V>(name, { valueEncoding: 'json' })
}
type Sub<V> = ReturnType<typeof sub<V>>

/** Keys sort as numbers: a fixed width makes LevelDB's order the shard order. */
const key = (campaignId: string, index: number): string => `${campaignId}!${String(index).padStart(16, '0')}`

/**
 * Results and campaign records in the node's LevelDB. A result is written
 * before the worker's result is acknowledged, so an acknowledged shard is
 * never lost when the coordinator dies.
 */
export class ResultStore {
  readonly #results: Sub<StoredResult>
  readonly #campaigns: Sub<CampaignRecord>

  constructor (db: Db) {
    this.#results = sub<StoredResult>(db, 'results')
    this.#campaigns = sub<CampaignRecord>(db, 'campaigns')
  }

  async put (campaignId: string, index: number, result: StoredResult): Promise<void> {
    await this.#results.put(key(campaignId, index), result)
  }

  async get (campaignId: string, index: number): Promise<StoredResult | undefined> {
    return await this.#results.get(key(campaignId, index))
  }

  /** Every stored result of a campaign, in shard order. */
  async * results (campaignId: string): AsyncGenerator<{ index: number, result: StoredResult }> {
    for await (const [k, result] of this.#results.iterator({ gt: `${campaignId}!`, lt: `${campaignId}!~` })) {
      yield { index: Number(k.slice(campaignId.length + 1)), result }
    }
  }

  async saveCampaign (record: CampaignRecord): Promise<void> {
    await this.#campaigns.put(record.id, record)
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
