import { describeError } from '../../actors/runtime/errors.ts'
import { mergeByTime, type LogCursor, type LogRecord, type NodeLogQuery, type NodeLogReply } from './query.ts'

/** how long a peer gets to answer a log query before it is reported as not answering */
export const PEER_LOGS_TIMEOUT_MS = 5000

/** What the fan-out needs from the node: who is in the mesh, its own log, and a way to ask the others. */
export interface LogPorts {
  self: string
  peers: () => Promise<Array<{ peerId: string, name: string, state: string }>>
  local: (q: NodeLogQuery) => Promise<NodeLogReply>
  remote: (peer: string, q: NodeLogQuery, signal: AbortSignal) => Promise<NodeLogReply>
}

export interface MeshLogQuery extends Omit<NodeLogQuery, 'from'> {
  /** only this node's lines (its name as `zp peers` shows it) */
  node?: string
  /** go on from an earlier answer (following) */
  cursor?: LogCursor
}

/** A log line as the API returns it: the node's pino record, with which node it came from. */
export type MeshLogRecord = LogRecord & { node: string, peerId: string }

export interface MeshLogAnswer {
  records: MeshLogRecord[]
  cursor: LogCursor
  /** some matching lines were left out (a node's limit or reply size, or the overall limit) */
  truncated: boolean
  /** the nodes whose lines are in this answer (asked and answered) */
  nodes: string[]
  /** nodes asked that did not answer, and why */
  unanswered: Array<{ node: string, peerId: string, reason: string }>
}

export class UnknownNodeError extends Error {
  override name = 'UnknownNodeError'
}

/**
 * Every live node's lines for a query (or the named node's), merged in time
 * order. Each peer is asked at once, with a timeout; one that does not answer
 * is reported, not fatal.
 */
export async function queryMeshLogs (ports: LogPorts, q: MeshLogQuery, signal?: AbortSignal): Promise<MeshLogAnswer> {
  const peers = await ports.peers()
  let targets = peers.filter(p => p.state !== 'dead')
  if (q.node != null) {
    targets = peers.filter(p => p.name === q.node)
    if (targets.length === 0) {
      const names = [...new Set(peers.map(p => p.name))].sort().join(', ')
      throw new UnknownNodeError(`no node named '${q.node}' in the mesh; the nodes are: ${names} (zp peers lists them)`)
    }
  }
  const cursor = q.cursor
  // no undefined fields: the query crosses the wire, where they would arrive as nulls
  const filter: NodeLogQuery = {
    limit: q.limit,
    ...(q.campaign != null ? { campaign: q.campaign } : {}),
    ...(q.shard != null ? { shard: q.shard } : {}),
    ...(q.sinceMs != null ? { sinceMs: q.sinceMs } : {}),
    ...(q.level != null ? { level: q.level } : {})
  }
  const answers = await Promise.all(targets.map(async p => {
    const from = cursor?.[p.peerId]
    const nodeQuery: NodeLogQuery = from != null ? { ...filter, from } : filter
    try {
      const reply = p.peerId === ports.self
        ? await ports.local(nodeQuery)
        : await ports.remote(p.peerId, nodeQuery, AbortSignal.any([AbortSignal.timeout(PEER_LOGS_TIMEOUT_MS), ...(signal != null ? [signal] : [])]))
      return { peer: p, reply }
    } catch (err) {
      return { peer: p, error: describeError(err) }
    }
  }))
  const next: LogCursor = { ...cursor }
  const lists: Array<Array<{ record: MeshLogRecord }>> = []
  const unanswered: MeshLogAnswer['unanswered'] = []
  const nodes: string[] = []
  let truncated = false
  for (const a of answers) {
    if (a.reply == null) {
      unanswered.push({ node: a.peer.name, peerId: a.peer.peerId, reason: a.error })
      continue
    }
    nodes.push(a.peer.name)
    next[a.peer.peerId] = a.reply.offset
    truncated ||= a.reply.truncated
    lists.push(a.reply.records.map(r => ({ record: { ...r, node: a.peer.name, peerId: a.peer.peerId } })))
  }
  let merged = mergeByTime(lists).map(e => e.record)
  // the newest `limit` overall; a forward read (following) keeps every line, or the cursor would skip some
  if (cursor == null && merged.length > q.limit) {
    merged = merged.slice(-q.limit)
    truncated = true
  }
  return { records: merged, cursor: next, truncated, nodes, unanswered }
}
