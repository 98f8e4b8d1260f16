import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalNode } from '../../bootstrap/local.ts'
import { delay } from '../../protocols/common/signals.ts'
import { ApiClient, resolveApiTarget } from '../api/client.ts'
import type { PeerJson } from '../api/routes.ts'
import { renderPeerTable } from './format.ts'

const say = (line: string): void => { process.stdout.write(line + '\n') }

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

/**
 * `zp-node demo`: three real zp-node processes on loopback, joined as a chain
 * (3 knows only 2, 2 knows only 1), so the full mesh shows peer exchange; then
 * one is killed with SIGKILL to show failure detection, and the rest drain
 * and stop cleanly.
 */
export async function runDemo (opts: { keep: boolean }): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'zp-demo-'))
  const nodes: LocalNode[] = []
  const abort = (): void => { for (const n of nodes) n.kill('SIGKILL') }
  process.once('SIGINT', abort)
  try {
    say(`Starting a local 3-node mesh (data dirs in ${root})`)
    const started = Date.now()
    let bootstrap: string | undefined
    for (const name of ['demo-1', 'demo-2', 'demo-3']) {
      const node = await LocalNode.spawn({ name, dataDir: join(root, name), join: bootstrap })
      nodes.push(node)
      const info = await node.ready()
      say(`  ${name}  pid ${info.pid}  ${info.multiaddrs[0]}${bootstrap != null ? `  (joined through ${bootstrap.split('/')[2]}:${bootstrap.split('/')[4]})` : ''}`)
      bootstrap = info.multiaddrs[0]
    }
    const client = new ApiClient(await resolveApiTarget({ dataDir: nodes[0]!.dataDir }))
    say('Waiting until every node is ALIVE with its probed capabilities…')
    const settled = await pollPeers(client, ps => ps.length === 3 && ps.every(p => p.state === 'alive' && p.capabilities != null), 60_000)
    say(`Mesh formed in ${((Date.now() - started) / 1000).toFixed(1)} s. Peer table as demo-1 sees it (zp peers):\n`)
    say(renderPeerTable(settled))

    const victim = nodes[1]!
    say(`\nKilling ${victim.name} with SIGKILL (no goodbye)…`)
    const killedAt = Date.now()
    victim.kill('SIGKILL')
    await victim.exited
    const after = await pollPeers(client, ps => ps.find(p => p.name === victim.name)?.state === 'dead', 30_000)
    const dead = after.find(p => p.name === victim.name)!
    say(`demo-1 marked ${victim.name} DEAD after ${((Date.now() - killedAt) / 1000).toFixed(2)} s (${dead.reason}).\n`)
    say(renderPeerTable(after))

    say('\nStopping the other nodes with SIGTERM (they drain, say goodbye, and exit)…')
    const exits = await Promise.all([nodes[0]!, nodes[2]!].map(async n => ({ name: n.name, ...(await n.stop()) })))
    for (const e of exits) say(`  ${e.name} exited with code ${e.code ?? e.signal}`)
    const bad = exits.filter(e => e.code !== 0)
    if (bad.length > 0) throw new Error(`${bad.map(e => e.name).join(', ')} did not exit cleanly; see ${root}`)
    say('Demo finished.')
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
