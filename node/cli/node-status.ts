import type { Command } from 'commander'
import { ApiClient, resolveApiTarget } from '../api/client.ts'
import type { BlobCount, GcReport } from '../blobs/gc.ts'
import { formatDuration } from '../campaign/duration.ts'
import { resolveDataDir } from '../datadir.ts'
import { formatLabels } from './format.ts'

// zp-node commands about the node running on a data dir: they ask it over its control API.

/** Bytes as people read them (SI units, as `ls -h --si` and disk vendors). */
export function formatBytes (n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB', 'PB']
  let value = n / 1000
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

function blobs (c: BlobCount): string {
  return `${c.blobs} blob${c.blobs === 1 ? '' : 's'} (${formatBytes(c.bytes)})`
}

/** How long a retention is, in the units it was most likely given in. */
function retention (ms: number): string {
  return ms === 0 ? '0 (at once)' : formatDuration(ms)
}

interface NodeJson {
  peerId: string
  name: string
  state: string
  api: string | null
  dataDir: string
  slots: { total: number, free: number }
  labels?: Record<string, string>
  blobStore: BlobCount
}

async function client (dataDir: string | undefined): Promise<ApiClient> {
  return new ApiClient(await resolveApiTarget({ dataDir: resolveDataDir(dataDir) }))
}

export function nodeStatusCommands (program: Command): void {
  program.command('status').description('show the node running on a data dir: identity, state, slots, blob store')
    .option('--data-dir <dir>', 'data dir (default $ZP_DATA_DIR or ~/.zp)')
    .option('--json', 'print GET /v1/node as JSON')
    .action(async (flags: { dataDir?: string, json?: boolean }) => {
      const node = await (await client(flags.dataDir)).get<NodeJson>('/v1/node')
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(node, null, 2) + '\n')
        return
      }
      const rows: Array<[string, string]> = [
        ['name', node.name],
        ['peer ID', node.peerId],
        ['state', node.state],
        ['API', node.api ?? '-'],
        ['data dir', node.dataDir],
        ['slots', `${node.slots.free} of ${node.slots.total} free`],
        ['labels', formatLabels(node.labels)],
        ['blob store', blobs(node.blobStore)]
      ]
      process.stdout.write(rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n') + '\n')
    })

  program.command('gc').description('remove the blobs nothing uses any more from the running node\'s store, now')
    .option('--data-dir <dir>', 'data dir of the running node (default $ZP_DATA_DIR or ~/.zp)')
    .option('--dry-run', 'only say what would be removed')
    .option('--json', 'print the report as JSON')
    .action(async (flags: { dataDir?: string, dryRun?: boolean, json?: boolean }) => {
      const report = await (await client(flags.dataDir)).request<GcReport>('POST', '/v1/node/gc', { body: { dryRun: flags.dryRun === true }, timeoutMs: 10 * 60_000 })
      if (flags.json === true) {
        process.stdout.write(JSON.stringify(report, null, 2) + '\n')
        return
      }
      const done = report.dryRun ? 'would remove' : 'removed'
      process.stdout.write(`${done} ${blobs(report.removed)}; kept ${blobs(report.kept)}; retention ${retention(report.retentionMs)}\n`)
    })
}
