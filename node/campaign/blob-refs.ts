import { workloadFiles } from '../../actors/coordinator/session.ts'
import type { CampaignRecord, CampaignStore } from '../../actors/coordinator/store.ts'
import { within, type ReferenceQuery, type ReferenceSource } from '../blobs/gc.ts'

/**
 * The blobs a campaign record keeps: its workload files and, for a rows
 * campaign, each shard's slice (workers store slices as blobs), while the
 * campaign has not ended and for the retention after it ended. A record with
 * no end time keeps them, whatever its state says: a copy may be behind.
 */
export function recordBlobs (record: CampaignRecord, q: ReferenceQuery): string[] {
  if (record.endedAt != null && !within(record.endedAt, q.now, q.retentionMs)) return []
  return [...workloadFiles(record.spec).map(f => f.hash), ...record.sliceHashes ?? []]
}

/** The reference source of a node's campaigns: those it coordinates and its replicas of others'. */
export function campaignReferences (stores: CampaignStore[]): ReferenceSource {
  return {
    why: 'named by a campaign that has not ended, or ended within the retention',
    hashes: async function * (q) {
      for (const store of stores) {
        for (const record of await store.campaigns()) yield * recordBlobs(record, q)
      }
    }
  }
}
