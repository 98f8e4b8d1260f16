import type { ShardTask } from './types.ts'

/** How failures name the shard they belong to: the worker's logs and the coordinator's dead-letter list show this text. */
export function shardLabel (task: ShardTask): string {
  return `shard ${task.shard.index} of campaign ${task.campaignId} (attempt ${task.attempt})`
}

export function errorText (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
