import { setTimeout as sleep } from 'node:timers/promises'
import { Option, type Command } from 'commander'
import type { ApiClient } from '../api/client.ts'
import type { MeshLogAnswer, MeshLogRecord } from '../logs/mesh.ts'
import { LEVELS, MAX_LIMIT, timeOf } from '../logs/query.ts'
import { durationFlag, UsageError } from './errors.ts'

/** how often `zp logs -f` asks for new lines */
const FOLLOW_EVERY_MS = 1000

/** fields the human line shows in its own columns, or that say nothing to a reader */
const SHOWN = new Set(['time', 'level', 'msg', 'node', 'nodeId', 'peerId', 'campaign', 'shard', 'pid', 'hostname'])
const LEVEL_NAMES = new Map<number, string>(Object.entries(LEVELS).map(([name, n]) => [n, name.toUpperCase()]))

/** One readable line: time, node, level, campaign/shard, message, then the other fields as key=value. */
export function formatLogLine (r: MeshLogRecord): string {
  const t = timeOf(r)
  const time = Number.isNaN(t) ? '-'.padEnd(23) : new Date(t).toISOString().replace('T', ' ').slice(0, 23)
  const level = (typeof r.level === 'number' ? LEVEL_NAMES.get(r.level) ?? String(r.level) : String(r.level ?? '-')).padEnd(5)
  const where = r.campaign != null ? `${String(r.campaign)}${r.shard != null ? `/${String(r.shard)}` : ''}` : (r.shard != null ? `shard ${String(r.shard)}` : '')
  const fields = Object.entries(r).filter(([k]) => !SHOWN.has(k)).map(([k, v]) => `${k}=${clip(typeof v === 'string' ? v : JSON.stringify(v))}`)
  return [time, r.node, level, where, String(r.msg ?? ''), ...fields].filter(s => s !== '').join('  ')
}

function clip (text: string, max = 200): string {
  return text.length > max ? text.slice(0, max) + '…' : text
}

interface LogsFlags {
  shard?: number
  node?: string
  follow?: boolean
  json?: boolean
  since?: number
  level?: string
  limit?: number
}

function shardFlag (value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--shard takes a shard index (0, 1, 2…), got '${value}'`)
  return Number(value)
}

function limitFlag (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new UsageError(`--limit takes a whole number from 1 to ${MAX_LIMIT}, got '${value}'`)
  return n
}

export function logsCommand (program: Command, target: (cmd: Command) => Command, client: (flags: Record<string, unknown>) => Promise<ApiClient>): void {
  target(program.command('logs').argument('[id]', 'campaign id (default: every line of every live node)')
    .description('log lines from the nodes of the mesh (those of a campaign, with ID), merged in time order'))
    .option('--shard <i>', 'only the lines of this shard (needs ID)', shardFlag)
    .option('--node <name>', 'only this node\'s lines (its name as zp peers shows it)')
    .option('-f, --follow', 'keep printing new lines until interrupted (Ctrl-C)')
    .option('--json', 'print one JSON object per line: the node\'s pino record, with node and peerId')
    .option('--since <duration>', 'only lines from this long ago on, e.g. 10m, 2h', durationFlag('--since'))
    .addOption(new Option('--level <level>', 'only lines at this level or above').choices(Object.keys(LEVELS)))
    .option('--limit <n>', `the newest N lines (per node, and in all; default 1000, at most ${MAX_LIMIT})`, limitFlag)
    .action(async (id: string | undefined, flags: LogsFlags & Record<string, unknown>) => {
      if (flags.shard != null && id == null) throw new UsageError('--shard needs a campaign: zp logs ID --shard I')
      const api = await client(flags)
      const params = new URLSearchParams()
      if (id != null) params.set('campaign', id)
      if (flags.shard != null) params.set('shard', String(flags.shard))
      if (flags.node != null) params.set('node', flags.node)
      if (flags.since != null) params.set('since', String(Date.now() - flags.since))
      if (flags.level != null) params.set('level', flags.level)
      if (flags.limit != null) params.set('limit', String(flags.limit))
      const stop = new AbortController()
      const interrupted = (): void => { stop.abort() }
      if (flags.follow === true) process.once('SIGINT', interrupted)
      let silent = ''
      const print = (answer: MeshLogAnswer, first: boolean): void => {
        const out = answer.records.map(r => flags.json === true ? JSON.stringify(r) : formatLogLine(r)).join('\n')
        if (out !== '') process.stdout.write(out + '\n')
        // following: said again only when the nodes that do not answer change
        const nowSilent = answer.unanswered.map(u => u.peerId).join()
        if (nowSilent !== silent) for (const u of answer.unanswered) process.stderr.write(`zp: node ${u.node} did not answer: ${u.reason}\n`)
        silent = nowSilent
        if (answer.truncated && first) process.stderr.write('zp: older lines left out (a node\'s line or size limit); narrow with --since, --shard, --node or --level, or raise --limit\n')
      }
      try {
        let answer = await api.get<MeshLogAnswer & { cursor: string }>(`/v1/logs?${params}`, { signal: stop.signal })
        print(answer, true)
        while (flags.follow === true && !stop.signal.aborted) {
          await sleep(FOLLOW_EVERY_MS, undefined, { signal: stop.signal })
          params.set('cursor', answer.cursor)
          answer = await api.get<MeshLogAnswer & { cursor: string }>(`/v1/logs?${params}`, { signal: stop.signal })
          print(answer, false)
        }
      } catch (err) {
        // Ctrl-C while following is how it ends, not a failure
        if (!stop.signal.aborted) throw err
      } finally {
        process.off('SIGINT', interrupted)
      }
    })
}
