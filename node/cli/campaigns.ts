import { createWriteStream } from 'node:fs'
import { resolve } from 'node:path'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import cliProgress from 'cli-progress'
import Table from 'cli-table3'
import { Option, type Command } from 'commander'
import type { Burst, Detached } from '../../protocols/bridge/schema.ts'
import type { ParamValue } from '../campaign/template.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import type { AuditVerdict } from '../../actors/coordinator/audit.ts'
import { delay } from '../../protocols/common/signals.ts'
import type { ApiClient } from '../api/client.ts'
import { UsageError, collect, durationFlag, positiveInt, positiveNumber } from './errors.ts'
import { ago, shortPeerId } from './format.ts'
import { filterRuns, runStates } from './runs-filter.ts'
import { campaignFileOf, templateValues } from './templates.ts'

export const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED'])

export function duration (ms: number | null): string {
  if (ms == null) return '-'
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}

function line (s: CampaignStatus): string {
  const pct = `${(s.progress * 100).toFixed(1)}%`
  const parts = [`${s.name} (${s.id})`, s.state, pct, `${s.shards.done}/${s.shards.total} shards`]
  if (s.shards.failed > 0) parts.push(`${s.shards.failed} failed`)
  if (!FINAL.has(s.state)) parts.push(`${s.shards.running + s.shards.leased} in flight`, `${s.rate.toFixed(1)} shards/s`, `ETA ${duration(s.etaMs)}`)
  if (s.waiting != null) parts.push(`waiting: ${s.waiting}`)
  return parts.join(' | ')
}

/**
 * Follows a campaign to its end: a progress bar with rate and ETA on a
 * terminal, a line every few seconds in a log. Returns the final status.
 */
export async function follow (client: ApiClient, id: string, opts: { signal?: AbortSignal } = {}): Promise<CampaignStatus> {
  const tty = process.stderr.isTTY
  const bar = tty
    ? new cliProgress.SingleBar({
      stream: process.stderr,
      format: '{name} {state} |{bar}| {percentage}% | {done}/{total} shards{failed} | {rate} shards/s | ETA {eta_text}{waiting}',
      hideCursor: true,
      clearOnComplete: false
    }, cliProgress.Presets.shades_classic)
    : undefined
  let lastLine = 0
  let refusals = 0
  let status = await client.get<CampaignStatus>(`/v1/campaigns/${id}`)
  bar?.start(Math.max(1, status.shards.total), 0)
  for (;;) {
    const refused = refusal(status)
    if (refused != null && (status.refusedBy?.length ?? 0) > refusals) {
      // said once (and again if more refuse), above the bar
      refusals = status.refusedBy!.length
      process.stderr.write(`${bar != null ? '\n' : ''}warning: peers refused this campaign's shards or replicas: ${refused}\n`)
    }
    const payload = {
      name: status.name,
      state: status.state,
      done: status.shards.done,
      total: status.shards.total,
      failed: status.shards.failed > 0 ? ` (${status.shards.failed} failed)` : '',
      rate: status.rate.toFixed(1),
      eta_text: duration(status.etaMs),
      waiting: status.waiting != null ? ` | waiting: ${status.waiting}` : ''
    }
    if (bar != null) {
      bar.setTotal(Math.max(1, status.shards.total))
      bar.update(Math.round(status.progress * status.shards.total), payload)
    } else if (Date.now() - lastLine > 2000 || FINAL.has(status.state)) {
      lastLine = Date.now()
      process.stderr.write(line(status) + '\n')
    }
    if (FINAL.has(status.state)) break
    await delay(500, opts.signal)
    status = await client.get<CampaignStatus>(`/v1/campaigns/${id}`)
  }
  bar?.stop()
  return status
}

/** `zp status ID --watch` on stderr; Ctrl-C stops it cleanly (exit 130, no status). */
async function watchUntilEnd (api: ApiClient, id: string): Promise<CampaignStatus | undefined> {
  const { watch } = await import('./watch.ts')
  const stop = new AbortController()
  const onInt = (): void => { stop.abort(new Error('interrupted')) }
  process.once('SIGINT', onInt)
  try {
    return await watch(api, id, { out: process.stderr, signal: stop.signal })
  } catch (err) {
    if (!stop.signal.aborted) throw err
    process.exitCode = 130
    return undefined
  } finally {
    process.off('SIGINT', onInt)
  }
}

/** Peers that will not work for the campaign's coordinator, and what to do about it; null when none. */
function refusal (s: CampaignStatus): string | null {
  const peers = s.refusedBy ?? []
  if (peers.length === 0) return null
  return `${peers.map(shortPeerId).join(', ')} (they do not trust the coordinator's node: start them with --trust ${s.coordinator}, ` +
    'or run every node with --psk FILE --trust-mesh, or submit on the node they joined through)'
}

/** A peer by name where the status knows it, with its ID shortened beside it. */
function named (peer: string, name: string | undefined): string {
  return name != null && name !== peer ? `${name} (${shortPeerId(peer)})` : shortPeerId(peer)
}

function printStatus (s: CampaignStatus): void {
  const field = (label: string, text: string): string => `  ${label.padEnd(12)}${text}`
  const refused = refusal(s)
  const replicas = s.replicas ?? []
  const out = [
    `${s.name} (${s.id})`,
    field('state', `${s.state}${s.stale === true ? ' (possibly behind)' : ''}${s.waiting != null ? ` (${s.stale === true || s.state === 'STOPPED' ? '' : 'waiting: '}${s.waiting})` : ''}`),
    field('priority', s.priority),
    field('coordinator', `${named(s.coordinator, s.coordinatorName)}${(s.term ?? 0) > 0 ? ` (term ${s.term}: a replica took it over)` : ''}`),
    field('replicas', replicas.length > 0 ? replicas.map((p, i) => named(p, s.replicaNames?.[i])).join(', ') : 'none'),
    ...refused != null ? [field('refused by', refused)] : [],
    field('shards', `${s.shards.done} done, ${s.shards.failed} failed, ${s.shards.running} running, ${s.shards.leased} leased, ${s.shards.pending} pending, of ${s.shards.total}`),
    field('progress', `${(s.progress * 100).toFixed(1)}%${FINAL.has(s.state) ? '' : `, ${s.rate.toFixed(1)} shards/s, ETA ${duration(s.etaMs)}`}`),
    field('created', `${new Date(s.createdAt).toISOString()} (${ago(s.createdAt)})`),
    field('took', s.startedAt != null ? duration((s.endedAt ?? Date.now()) - s.startedAt) : '-'),
    field('run dir', s.runDir)
  ]
  if (s.workers.length > 0) {
    const t = new Table({ head: ['WORKER', 'DONE', 'FAILED', 'BUSY'], style: { head: [], border: [], compact: true } })
    for (const w of s.workers) t.push([w.name, w.done, w.failed, duration(w.busyMs)])
    out.push(t.toString())
  }
  if (s.deadLetters.length > 0) {
    out.push(`  dead letters (${s.shards.failed}):`)
    for (const d of s.deadLetters) out.push(`    shard ${d.index} after ${d.attempts} attempt(s): ${d.error.split('\n')[0]}`)
  }
  process.stdout.write(out.join('\n') + '\n')
}

function printList (list: CampaignStatus[], empty: string): void {
  if (list.length === 0) {
    process.stdout.write(empty + '\n')
    return
  }
  const t = new Table({ head: ['ID', 'NAME', 'STATE', 'PROGRESS', 'SHARDS', 'FAILED', 'CREATED', 'TOOK'], style: { head: [], border: [], compact: true } })
  for (const s of list) {
    t.push([s.id, s.name, s.state, `${(s.progress * 100).toFixed(0)}%`, `${s.shards.done}/${s.shards.total}`, s.shards.failed, ago(s.createdAt),
      s.startedAt != null ? duration((s.endedAt ?? Date.now()) - s.startedAt) : '-'])
  }
  process.stdout.write(t.toString() + '\n')
}

/** Said on stderr at once when no peer can run a campaign: why, and the fix (the status says it again). */
function warnIfNobodyCan (s: CampaignStatus): void {
  if (s.state !== 'QUEUED' || s.waiting == null || !s.waiting.startsWith('no peer')) return
  process.stderr.write(`zp: warning: no peer can run ${s.id} now: ${s.waiting}\n`)
}

/** Exit code of a finished campaign: 0 only when every shard succeeded. */
export function exitCodeOf (state: string): number {
  return state === 'SUCCEEDED' ? 0 : 1
}

export interface SubmitExtras { params?: Record<string, ParamValue>, burst?: Burst, detached?: Omit<Detached, 'sharedDir'> & { sharedDir?: string } }

/** `--burst slurm:4`, `dask:tcp://…`, `ray:4@http://…`, `k8s:4@IMAGE`, `--max-cost N`, `--on slurm …` as the submit body's burst and detached. */
export function submitExtras (flags: Record<string, unknown>, params?: Record<string, ParamValue>): SubmitExtras {
  const burst: Burst = flags.maxCost != null ? { maxCost: flags.maxCost as number } : {}
  for (const b of (flags.burst as string[] | undefined) ?? []) {
    const [engine, ...rest] = b.split(':')
    const what = rest.join(':')
    const [, n, where] = /^([1-9]\d*)@(\S+)$/.exec(what) ?? []
    if (engine === 'slurm' && /^[1-9]\d*$/.test(what)) burst.slurm = { nodes: Number(what) }
    else if (engine === 'dask' && /^(tcp|tls|ws|wss):\/\/\S+$/.test(what)) burst.dask = { scheduler: what }
    else if (engine === 'ray' && where != null && /^https?:\/\//.test(where)) burst.ray = { nodes: Number(n), address: where }
    else if (engine === 'k8s' && where != null) burst.k8s = { nodes: Number(n), image: where }
    else throw new UsageError(`--burst takes slurm:N (e.g. slurm:4), dask:SCHEDULER (e.g. dask:tcp://10.0.0.5:8786), ray:N@DASHBOARD (e.g. ray:4@http://10.0.0.5:8265) or k8s:N@IMAGE (e.g. k8s:4@ghcr.io/lab/zp-node:0.1.0), got '${b}'`)
  }
  if (flags.on == null && (flags.arrayLimit != null || flags.sharedDir != null)) throw new UsageError('--array-limit and --shared-dir go with --on slurm')
  const detached = flags.on === 'slurm'
    ? {
        engine: 'slurm' as const,
        ...(flags.arrayLimit != null ? { arrayLimit: flags.arrayLimit as number } : {}),
        ...(flags.sharedDir != null ? { sharedDir: resolve(flags.sharedDir as string) } : {})
      }
    : undefined
  return { ...(params != null && Object.keys(params).length > 0 ? { params } : {}), ...(Object.keys(burst).length > 0 ? { burst } : {}), ...(detached != null ? { detached } : {}) }
}

export function campaignCommands (program: Command, target: (cmd: Command) => Command, client: (flags: Record<string, unknown>) => Promise<ApiClient>): void {
  target(program.command('submit').argument('[file]', 'campaign file (YAML or JSON), or a template (one with a parameters: section)').description('submit a campaign to the node; prints its id'))
    .option('--template <name>', `a built-in template instead of a file (zp templates list)`)
    .option('--set <name=value>', 'a template parameter\'s value, repeatable (checked against its declaration)', collect)
    .option('--params-file <file>', 'template parameter values in a YAML or JSON file (name: value); --set wins over it')
    .option('--wait', 'follow it to the end with a progress bar; exit non-zero unless it succeeds')
    .option('--json', 'print the status as JSON')
    .option('--burst <engine:what>', 'bring capacity up while it runs: slurm:N, dask:tcp://HOST:PORT, ray:N@http://HEAD:8265 or k8s:N@IMAGE; released when it ends', collect)
    .addOption(new Option('--on <engine>', 'run the shards as Slurm array tasks that never join the mesh (compute nodes without network)').choices(['slurm']))
    .option('--array-limit <m>', 'with --on slurm: array tasks running at once (sbatch --array=…%M)', positiveInt('--array-limit'))
    .option('--shared-dir <dir>', 'with --on slurm: a folder this node and the compute nodes share (default $ZP_SHARED_DIR or <data-dir>/detached)')
    .option('--dry-run', 'submit nothing: validate, time a few shards here, print core-hours, GPU-hours, finish time and (with --prices) cost')
    .option('--calibrate <k>', 'shards to time here for --dry-run or --prices (default 3)', positiveInt('--calibrate'))
    .option('--prices <file>', 'price table (see examples/prices.yaml): estimate the cost, hold the burst to its maxCost and stamp the estimate into it')
    .option('--max-cost <n>', 'the most the burst may cost, in the price table\'s currency (needs --prices)', positiveNumber('--max-cost'))
    .option('--exec-config <file>', 'exec workloads, with --dry-run or --prices: the template file to time shards with (zp-node --exec-config\'s format)')
    .action(async (fileArg: string | undefined, flags: Record<string, unknown>) => {
      const file = await campaignFileOf(fileArg, flags.template as string | undefined)
      const params = await templateValues(flags)
      if (flags.dryRun === true) {
        await (await import('./dry-run.ts')).dryRun(file, submitExtras(flags, params), flags, async () => await client(flags))
        return
      }
      // the node validates (and reads the files once, into its blob store); a bad file comes back as a 400 naming the field
      const api = await client(flags)
      const extras = typeof flags.prices === 'string' ? await (await import('./dry-run.ts')).withCostEstimate(file, submitExtras(flags, params), { ...flags, prices: flags.prices }, api) : submitExtras(flags, params)
      const body = { file: resolve(file), ...extras }
      const submitted = await api.request<CampaignStatus>('POST', '/v1/campaigns', { body, timeoutMs: 120_000 })
      if (flags.wait !== true) {
        process.stdout.write(flags.json === true ? JSON.stringify(submitted, null, 2) + '\n' : `${submitted.id}\n`)
        warnIfNobodyCan(submitted)
        return
      }
      process.stderr.write(`submitted ${submitted.name} as ${submitted.id}\n`)
      warnIfNobodyCan(submitted)
      const final = await follow(api, submitted.id)
      if (flags.json === true) process.stdout.write(JSON.stringify(final, null, 2) + '\n')
      else process.stdout.write(await api.request<string>('GET', `/v1/campaigns/${final.id}/summary`).catch(() => line(final) + '\n'))
      process.exitCode = exitCodeOf(final.state)
    })

  target(program.command('status').argument('[id]', 'campaign id (default: all campaigns not yet finished)').description('show a campaign, or the running ones'))
    .option('--watch', 'a live view (a bar per shard state, rate, ETA, workers) until it ends; plain lines when stderr is not a terminal; exit non-zero unless it succeeds')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, flags: Record<string, unknown>) => {
      const api = await client(flags)
      if (id == null) {
        if (flags.watch === true) throw new UsageError('--watch needs a campaign id')
        const active = (await api.get<CampaignStatus[]>('/v1/campaigns')).filter(s => !FINAL.has(s.state))
        if (flags.json === true) process.stdout.write(JSON.stringify(active, null, 2) + '\n')
        else printList(active, 'no campaign is running on this node (\'zp runs\' lists the finished ones); submit one with: zp submit campaign.yaml')
        return
      }
      const status = flags.watch === true ? await watchUntilEnd(api, id) : await api.get<CampaignStatus>(`/v1/campaigns/${id}`)
      if (status == null) return
      if (flags.json === true) process.stdout.write(JSON.stringify(status, null, 2) + '\n')
      else printStatus(status)
      if (flags.watch === true) process.exitCode = exitCodeOf(status.state)
    })

  target(program.command('report').argument('<id>', 'campaign id').description('save the summary.html of an ended campaign (tables and charts, from any node); prints its path'))
    .option('--out <file>', 'where to write it (default ./<name>-<id>.html)')
    .option('--open', 'open it in the browser')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const { saveReport } = await import('./report.ts')
      const path = await saveReport(await client(flags), id, { out: flags.out as string | undefined, open: flags.open === true })
      process.stdout.write(path + '\n')
    })

  target(program.command('cancel').argument('<id>', 'campaign id').description('stop leasing, abort running shards, keep what finished'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const status = await (await client(flags)).request<CampaignStatus>('POST', `/v1/campaigns/${id}/cancel`)
      if (flags.json === true) process.stdout.write(JSON.stringify(status, null, 2) + '\n')
      else process.stdout.write(`${status.id} ${status.state}: ${status.shards.done} of ${status.shards.total} shards done and kept\n`)
    })

  target(program.command('results').argument('<id>', 'campaign id').description('export the result rows in shard order'))
    .option('--format <format>', 'jsonl or csv', 'jsonl')
    .option('--out <file>', 'write to a file instead of stdout')
    .option('--partial', 'export the rows of a campaign that has not succeeded (yet): without it, that is an error')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const format = String(flags.format)
      if (format !== 'jsonl' && format !== 'csv') throw new UsageError(`--format must be jsonl or csv, not '${format}'`)
      const partial = flags.partial === true
      const res = await (await client(flags)).raw('GET', `/v1/campaigns/${id}/results?format=${format}${partial ? '&partial=true' : ''}`)
      const state = res.headers.get('x-zp-state')
      if (state != null && state !== 'SUCCEEDED') process.stderr.write(`zp: note: partial results: campaign ${id} is ${state}, ${res.headers.get('x-zp-shards') ?? '?'} shards have results\n`)
      if (res.headers.get('x-zp-stale') === 'true') process.stderr.write('zp: note: read from this node\'s own copy, which may be behind: no peer with an up-to-date copy answered\n')
      const out = typeof flags.out === 'string' ? createWriteStream(flags.out) : process.stdout
      await pipeline(res.body, out as Writable)
    })

  target(program.command('summary').argument('<id>', 'campaign id').description('print the summary.md of an ended campaign (from any node)'))
    .action(async (id: string, flags: Record<string, unknown>) => {
      process.stdout.write(await (await client(flags)).request<string>('GET', `/v1/campaigns/${id}/summary`))
    })

  target(program.command('resume').argument('<id>', 'campaign id').description('pick up a campaign its coordinator stopped running (after zp-node start --no-resume)'))
    .option('--wait', 'follow it to the end')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const api = await client(flags)
      const status = await api.request<CampaignStatus>('POST', `/v1/campaigns/${id}/resume`, { timeoutMs: 120_000 })
      const final = flags.wait === true ? await follow(api, id) : status
      if (flags.json === true) process.stdout.write(JSON.stringify(final, null, 2) + '\n')
      else process.stdout.write(`${final.id} ${final.state}: ${final.shards.done} of ${final.shards.total} shards done\n`)
      if (flags.wait === true) process.exitCode = exitCodeOf(final.state)
    })

  const audit = program.command('audit').description('the hash-chained audit log of a campaign (runs/<id>/audit.jsonl)')
  target(audit.command('verify').argument('<id>', 'campaign id').description('check that no record was changed or removed'))
    .option('--json', 'print JSON')
    .action(async (id: string, flags: Record<string, unknown>) => {
      const verdict = await (await client(flags)).get<AuditVerdict>(`/v1/campaigns/${id}/audit`)
      if (flags.json === true) process.stdout.write(JSON.stringify(verdict, null, 2) + '\n')
      else if (verdict.ok) process.stdout.write(`ok: ${verdict.records} records, chain intact (head ${verdict.head.slice(0, 16)}…)\n`)
      else process.stdout.write(`TAMPERED: line ${verdict.problem!.line}: ${verdict.problem!.reason} (${verdict.records} records verified before it)\n`)
      process.exitCode = verdict.ok ? 0 : 1
    })

  target(program.command('runs').description('list every campaign this node has coordinated'))
    .option('--name <pattern>', 'only campaigns whose name has this in it (any case; * matches anything)')
    .option('--state <state>', 'only campaigns in this state, repeatable (RUNNING, SUCCEEDED, FAILED, …)', collect)
    .option('--since <duration>', 'only campaigns created within this long (e.g. 2h, 7d)', durationFlag('--since'))
    .option('--json', 'print JSON')
    .action(async (flags: Record<string, unknown>) => {
      const filter = { name: flags.name as string | undefined, states: runStates((flags.state as string[] | undefined) ?? []), sinceMs: flags.since as number | undefined }
      const all = await (await client(flags)).get<CampaignStatus[]>('/v1/campaigns')
      const list = filterRuns(all, filter)
      if (flags.json === true) process.stdout.write(JSON.stringify(list, null, 2) + '\n')
      else printList(list, all.length === 0 ? 'this node has coordinated no campaign; submit one with: zp submit campaign.yaml' : `none of this node's ${all.length} campaigns matches`)
    })
}
