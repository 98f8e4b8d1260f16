import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { ZpNode } from '../../node/node.ts'
import { tempDir, waitFor } from '../helpers.ts'

// Campaigns on in-process meshes: files to submit, waiting for the end, exports.

export const SQUARES = fileURLToPath(new URL('../fixtures/campaigns/squares.mjs', import.meta.url))

/** Campaign files (the squares module unless `body` says otherwise) in a temp dir, removed with `remove`. */
export function campaignFiles (prefix: string): { write: (name: string, body: Record<string, unknown>) => Promise<string>, remove: () => Promise<void> } {
  let dir: { path: string, remove: () => Promise<void> } | undefined
  return {
    write: async (name, body) => {
      dir ??= await tempDir(prefix)
      const file = join(dir.path, `${name}.json`)
      await writeFile(file, JSON.stringify({ name, workload: { kind: 'module', module: SQUARES }, ...body }))
      return file
    },
    remove: async () => {
      await dir?.remove()
      dir = undefined
    }
  }
}

/** Waits for a campaign to reach a final state, as `node` reports it. */
export async function finished (node: ZpNode, id: string, timeoutMs = 60_000): Promise<CampaignStatus> {
  return await waitFor(async () => {
    const s = await node.campaigns.status(id)
    return s != null && ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(s.state) ? s : undefined
  }, { timeoutMs, what: `campaign ${id} to end on ${node.name}` })
}

export async function exported (node: ZpNode, id: string, format: 'jsonl' | 'csv' = 'jsonl', opts: { partial?: boolean } = {}): Promise<string> {
  let text = ''
  for await (const chunk of (await node.campaigns.results(id, format, opts))!.rows) text += chunk
  return text
}
