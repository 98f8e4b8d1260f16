import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { LocalNode } from '../../bootstrap/local.ts'
import { delay } from '../../protocols/common/signals.ts'
import { blackScholes, estimate, optionParams, type ShardRow } from '../../examples/monte-carlo/pricing.ts'
import { buildOnnxExample } from '../../examples/onnx-batch/build.ts'
import type { CampaignStatus } from '../../actors/coordinator/status.ts'
import { ApiClient, resolveApiTarget } from '../api/client.ts'
import type { PeerJson } from '../api/routes.ts'
import { generatePskFile } from '../psk.ts'
import { follow } from './campaigns.ts'
import { renderPeerTable } from './format.ts'

const MONTE_CARLO = fileURLToPath(new URL('../../examples/monte-carlo/campaign.yaml', import.meta.url))
const say = (line = ''): void => { process.stdout.write(line + '\n') }

async function pollPeers (client: ApiClient, done: (peers: PeerJson[]) => boolean, timeoutMs: number): Promise<PeerJson[]> {
  const until = Date.now() + timeoutMs
  let peers: PeerJson[] = []
  while (Date.now() < until) {
    peers = await client.get<PeerJson[]>('/v1/peers')
    if (done(peers)) return peers
    await delay(100)
  }
  throw new Error(`the demo mesh did not settle within ${timeoutMs / 1000} s; last view:\n${renderPeerTable(peers)}`)
}

async function pollStatus (client: ApiClient, id: string, done: (s: CampaignStatus) => boolean, timeoutMs: number): Promise<CampaignStatus> {
  const until = Date.now() + timeoutMs
  let last: CampaignStatus | undefined
  while (Date.now() < until) {
    last = await client.get<CampaignStatus>(`/v1/campaigns/${id}`).catch(() => last)
    if (last != null && (done(last) || ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(last.state))) return last
    await delay(100)
  }
  throw new Error(`campaign ${id} did not get there within ${timeoutMs / 1000} s; last: ${last?.state ?? 'no answer'}, ${last?.shards.done ?? 0} shards done, coordinator ${last?.coordinator ?? '?'}`)
}

async function runCampaign (client: ApiClient, file: string): Promise<CampaignStatus> {
  const submitted = await client.request<CampaignStatus>('POST', '/v1/campaigns', { body: { file }, timeoutMs: 120_000 })
  say(`Submitted ${submitted.name} as ${submitted.id}: ${submitted.shards.total} shards`)
  const final = await follow(client, submitted.id)
  if (final.state !== 'SUCCEEDED') throw new Error(`campaign ${final.name} ended ${final.state}; see ${final.runDir}`)
  return final
}

/**
 * `zp-node demo` (`npm run demo`): three real zp-node processes on loopback
 * form a private mesh (pre-shared key) joined as a chain, so reaching the
 * first node from the third takes peer exchange; then a Monte Carlo and an
 * ONNX batch-inference campaign run across it, the coordinator of a third is
 * killed mid-run and a replica takes it over, and the rest drain and stop.
 */
export async function runDemo (opts: { keep: boolean }): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'zp-demo-'))
  const nodes: LocalNode[] = []
  const abort = (): void => { for (const n of nodes) n.kill('SIGKILL') }
  process.once('SIGINT', abort)
  try {
    const started = Date.now()
    const onnx = await buildOnnxExample({ dir: join(root, 'onnx-batch') })
    const psk = await generatePskFile(join(root, 'mesh.key'))
    say(`Starting a private 3-node mesh (key fingerprint ${psk.fingerprint}; data dirs in ${root})`)
    let bootstrap: string | undefined
    for (const name of ['demo-1', 'demo-2', 'demo-3']) {
      const node = await LocalNode.spawn({ name, dataDir: join(root, name), join: bootstrap, args: ['--psk', join(root, 'mesh.key'), '--trust-mesh'] })
      nodes.push(node)
      const info = await node.ready()
      say(`  ${name}  pid ${info.pid}  ${info.multiaddrs[0]}${bootstrap != null ? `  (joined through ${bootstrap.split('/')[2]}:${bootstrap.split('/')[4]})` : ''}`)
      bootstrap = info.multiaddrs[0]
    }
    const client = new ApiClient(await resolveApiTarget({ dataDir: nodes[0]!.dataDir }))
    const settled = await pollPeers(client, ps => ps.length === 3 && ps.every(p => p.state === 'alive' && p.capabilities != null), 60_000)
    say(`Mesh formed in ${((Date.now() - started) / 1000).toFixed(1)} s. The peer table as demo-1 sees it (zp peers):\n`)
    say(renderPeerTable(settled))

    say('\n1. Monte Carlo option pricing (examples/monte-carlo): 2,000,000 paths')
    const mc = await runCampaign(client, MONTE_CARLO)
    const rows = (await client.request<string>('GET', `/v1/campaigns/${mc.id}/results?format=jsonl`)).trim().split('\n').map(l => JSON.parse(l) as ShardRow)
    const params = optionParams((parse(await readFile(MONTE_CARLO, 'utf8')) as { params: Record<string, unknown> }).params)
    const e = estimate(rows, params)
    say(`   price ${e.price.toFixed(4)} ± ${e.standardError.toFixed(4)} from ${e.paths.toLocaleString('en')} paths; Black–Scholes says ${blackScholes(params).toFixed(4)}`)
    say(`   shards per node: ${mc.workers.map(w => `${w.name} ${w.done}`).join(', ')}`)

    say(`\n2. Batch ONNX inference (examples/onnx-batch): an MLP over ${onnx.rows.toLocaleString('en')} rows, checked against a reference`)
    const inference = await runCampaign(client, onnx.campaign)
    say('')
    say((await client.request<string>('GET', `/v1/campaigns/${inference.id}/summary`)).trim().split('\n').map(l => `   ${l}`).join('\n'))

    const [first, second, third] = nodes as [LocalNode, LocalNode, LocalNode]
    say(`\n3. Losing the coordinator: a bigger Monte Carlo run on ${first.name}, whose checkpoints ${second.name} and ${third.name} replicate; ${first.name} is killed with SIGKILL mid-run`)
    const big = parse(await readFile(MONTE_CARLO, 'utf8')) as { name: string, shards: { iterations: { total: number } } }
    big.name = 'option-pricing-failover'
    big.shards.iterations.total = 20_000_000
    const submitted = await client.request<CampaignStatus>('POST', '/v1/campaigns', { body: { spec: big, baseDir: dirname(MONTE_CARLO) }, timeoutMs: 120_000 })
    say(`Submitted ${submitted.name} as ${submitted.id}: ${submitted.shards.total} shards`)
    const running = await pollStatus(client, submitted.id, s => s.shards.done >= 20 && (s.replicas?.length ?? 0) === 2, 120_000)
    if (running.state !== 'RUNNING') throw new Error(`campaign ${running.name} ended before the demo could kill its coordinator; see ${running.runDir}`)
    const killedAt = Date.now()
    first.kill('SIGKILL')
    await first.exited
    say(`   killed ${first.name} with ${running.shards.done} of ${running.shards.total} shards done`)
    const survivor = new ApiClient(await resolveApiTarget({ dataDir: third.dataDir }))
    const ids = new Map(nodes.map(n => [n.info!.peerId, n.name]))
    const taken = await pollStatus(survivor, submitted.id, s => (s.term ?? 0) >= 1 && s.coordinator !== first.info!.peerId, 60_000)
    say(`   ${ids.get(taken.coordinator) ?? taken.coordinator} was elected and took the campaign over ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (term ${taken.term ?? 0}), from the replicated checkpoint`)
    const failover = await follow(survivor, submitted.id)
    if (failover.state !== 'SUCCEEDED') throw new Error(`campaign ${failover.name} ended ${failover.state}; see ${failover.runDir}`)
    const bigRows = (await survivor.request<string>('GET', `/v1/campaigns/${submitted.id}/results?format=jsonl`)).trim().split('\n').map(l => JSON.parse(l) as ShardRow)
    const e2 = estimate(bigRows, params)
    say(`   price ${e2.price.toFixed(4)} ± ${e2.standardError.toFixed(4)} from ${e2.paths.toLocaleString('en')} paths (every shard exactly once); Black–Scholes says ${blackScholes(params).toFixed(4)}`)

    say('\nStopping the other nodes with SIGTERM (they drain, say goodbye, and exit)…')
    const exits = await Promise.all([second, third].map(async n => ({ name: n.name, ...(await n.stop()) })))
    for (const x of exits) say(`   ${x.name} exited with code ${x.code ?? x.signal}`)
    const bad = exits.filter(x => x.code !== 0)
    if (bad.length > 0) throw new Error(`${bad.map(x => x.name).join(', ')} did not exit cleanly; see ${root}`)
    say(`Demo finished in ${((Date.now() - started) / 1000).toFixed(1)} s.`)
  } catch (err) {
    abort()
    for (const n of nodes) say(`--- last output of ${n.name} ---\n${await n.output(15)}`)
    throw err
  } finally {
    process.off('SIGINT', abort)
    await Promise.all(nodes.map(async n => { await n.stop(5000) }))
    if (!opts.keep) await rm(root, { recursive: true, force: true })
    else say(`Kept ${root}`)
  }
}
