import { CampaignRun, type DeadLetter } from './campaign.ts'
import { ShardPlan } from './plan.ts'
import type { CampaignRecord, CampaignStore, StoredLease } from './store.ts'

export interface RestoredRun {
  run: CampaignRun
  /** leases in force when the coordinator stopped: their holders may still deliver */
  leases: Array<{ index: number } & StoredLease>
  /** module checkpoints of shards not yet done */
  checkpoints: Map<number, unknown>
}

/**
 * A campaign as its checkpoint left it: the shards with a result are done and
 * never run again, failure counts and dead letters stand, epochs continue above
 * the reserved ones, and every other shard (including those leased when the
 * coordinator stopped) is pending again.
 */
export async function restoreRun (record: CampaignRecord, store: CampaignStore, now: number): Promise<RestoredRun> {
  const spec = record.spec
  const plan = new ShardPlan(spec.shards, { rows: spec.workload.kind === 'onnx' ? spec.workload.data.rows : undefined, offsets: record.offsets })
  const run = new CampaignRun({ id: record.id, spec, plan, createdAt: record.createdAt })
  const done: number[] = []
  for await (const index of store.doneShards(record.id)) done.push(index)
  const failures: Array<[number, number]> = []
  const dead: DeadLetter[] = []
  const checkpoints = new Map<number, unknown>()
  for await (const { index, state } of store.shards(record.id)) {
    if (state.failures > 0) failures.push([index, state.failures])
    if (state.dead != null) dead.push({ index, ...state.dead })
    if (state.checkpoint !== undefined) checkpoints.set(index, state.checkpoint)
  }
  for (const index of done) checkpoints.delete(index)
  const leases: RestoredRun['leases'] = []
  for await (const lease of store.leases(record.id)) leases.push(lease)
  run.restore({ done, failures, dead, epoch: record.epochReserved ?? 0, startedAt: record.startedAt }, now)
  return { run, leases, checkpoints }
}
