import type { CampaignStore } from '../../actors/coordinator/store.ts'

export type ExportFormat = 'jsonl' | 'csv'

/**
 * A campaign's result rows in shard order, as text chunks. Each row is the
 * object a shard produced with its shard index in front (`shard`); a row that
 * is not an object becomes `{ shard, value }`. Nothing about where or when a
 * shard ran goes in, so the export of a campaign is byte-identical however
 * many nodes ran it.
 */
export async function * exportResults (store: CampaignStore, campaignId: string, format: ExportFormat): AsyncGenerator<string> {
  if (format === 'jsonl') {
    for await (const { index, result } of store.results(campaignId)) {
      yield result.rows.map(r => JSON.stringify(withShard(index, r)) + '\n').join('')
    }
    return
  }
  // CSV needs its columns first: every key any row has, in first-seen order
  const columns = new Map<string, true>([['shard', true]])
  for await (const { index, result } of store.results(campaignId)) {
    for (const r of result.rows) for (const k of Object.keys(withShard(index, r))) columns.set(k, true)
  }
  const names = [...columns.keys()]
  yield names.map(csvField).join(',') + '\n'
  for await (const { index, result } of store.results(campaignId)) {
    yield result.rows.map(r => {
      const row = withShard(index, r)
      return names.map(n => csvField(row[n])).join(',') + '\n'
    }).join('')
  }
}

function withShard (index: number, row: unknown): Record<string, unknown> {
  return row != null && typeof row === 'object' && !Array.isArray(row) ? { shard: index, ...row } : { shard: index, value: row }
}

function csvField (value: unknown): string {
  if (value == null) return ''
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value)
  return /[",\r\n]|^\s|\s$/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}
