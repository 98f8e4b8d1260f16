import { z } from 'zod'
import type { ActorDefinition } from '../runtime/types.ts'

export const SYSTEM_ACTOR = 'system'

export const SystemRequestSchema = z.discriminatedUnion('type', [
  /** who this node is and what state it is in */
  z.object({ type: z.literal('info') }),
  /** stop taking work, finish or hand back what runs, then stop */
  z.object({ type: z.literal('drain'), reason: z.string().max(512).optional() })
])
export type SystemRequest = z.infer<typeof SystemRequestSchema>

export interface SystemPort {
  info: () => unknown
  drain: (reason: string) => void
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
        port.drain(msg.reason ?? `asked by ${meta.from}`)
        return { draining: true }
      }
    })
  }
}
