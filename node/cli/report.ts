import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { isFinal } from '../../actors/coordinator/states.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { ApiClient } from '../api/client.ts'
import { UsageError } from './errors.ts'

/** the report is read from the coordinator, perhaps over the mesh: longer than a status */
const REPORT_TIMEOUT_MS = 60_000

/** `<name>-<id>.html`, the name reduced to what is safe in a file name on any system. */
export function reportFileName (status: Pick<CampaignStatus, 'name' | 'id'>): string {
  const name = status.name.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[-.]+|-+$/g, '').slice(0, 80)
  return `${name !== '' ? name : 'campaign'}-${status.id}.html`
}

/**
 * `zp report ID`: the ended campaign's summary.html (text, tables and charts,
 * made by its coordinator) saved to a file, opened in the browser with
 * `--open`. Returns the path written.
 */
export async function saveReport (api: ApiClient, id: string, opts: { out?: string, open?: boolean, signal?: AbortSignal }): Promise<string> {
  const status = await api.get<CampaignStatus>(`/v1/campaigns/${id}`, { signal: opts.signal })
  if (!isFinal(status.state)) {
    throw new UsageError(`campaign ${id} is ${status.state}: its report is written when it ends; follow it with 'zp status ${id} --watch', then run zp report again`)
  }
  const html = await api.request<string>('GET', `/v1/campaigns/${id}/summary?format=html`, { timeoutMs: REPORT_TIMEOUT_MS, signal: opts.signal })
  const path = resolve(opts.out ?? reportFileName(status))
  await writeFile(path, html)
  if (opts.open === true) {
    const { default: open } = await import('open')
    // the browser outlives zp: do not wait for it
    await open(path, { wait: false })
  }
  return path
}
