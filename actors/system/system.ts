import { z } from 'zod'
import { NodeLogQuerySchema, type NodeLogQuery, type NodeLogReply } from '../../node/logs/query.ts'
import { Later, type ActorDefinition } from '../runtime/types.ts'

export const SYSTEM_ACTOR = 'system'

export const SystemRequestSchema = z.discriminatedUnion('type', [
  /** who this node is and what state it is in */
  z.object({ type: z.literal('info') }),
  /** stop taking work, finish or hand back what runs, then stop */
  z.object({ type: z.literal('drain'), reason: z.string().max(512).optional() }),
  /** this node's log lines that match (zp logs) */
  z.object({ type: z.literal('logs'), query: NodeLogQuerySchema })
])
export type SystemRequest = z.infer<typeof SystemRequestSchema>

export interface SystemPort {
  info: () => unknown
  drain: (reason: string) => void
  logs: (q: NodeLogQuery) => Promise<NodeLogReply>
}

/**
 * Node administration for trusted peers (a coordinator draining a node before
 * maintenance, an operator's tooling). Privileged: untrusted peers are refused
 * by the host before this sees anything.
 */
export function systemActor (port: SystemPort): ActorDefinition<SystemRequest> {
  return {
    access: 'trusted',
    schema: SystemRequestSchema,
    create: () => ({
      receive: (msg, meta) => {
        if (msg.type === 'info') return port.info()
        // reading the log file must not hold up a drain queued behind it
        if (msg.type === 'logs') return new Later(port.logs(msg.query))
        port.drain(msg.reason ?? `asked by ${meta.from}`)
        return { draining: true }
      }
    })
  }
}
