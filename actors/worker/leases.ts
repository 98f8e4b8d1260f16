import type { LeaseReply } from '../../protocols/campaign/messages.ts'
import type { WorkerState } from './lifecycle.ts'

export type LeaseRefused = Omit<LeaseReply['refused'][number], 'epoch'>

export interface LeaseCheck {
  state: WorkerState
  /** the coordinator this worker follows for the campaign, when the sender's term is below its term */
  supersededBy?: { coordinator: string, term: number }
  running: number
  queued: number
  /** slots and queue together */
  capacity: number
  /** this shard of the campaign already runs or waits here */
  duplicate: boolean
}

/** Why a lease is turned down, or undefined when the worker takes it. */
export function refuseLease (c: LeaseCheck): LeaseRefused | undefined {
  if (c.supersededBy != null) return { code: 'superseded', reason: `superseded: this campaign's coordinator is ${c.supersededBy.coordinator} since term ${c.supersededBy.term}` }
  // a worker takes work only while running (it says which state it is in instead)
  if (c.state !== 'running') return { code: 'draining', reason: c.state }
  if (c.running + c.queued >= c.capacity) return { code: 'busy', reason: `busy: ${c.running} running, ${c.queued} queued` }
  if (c.duplicate) return { code: 'duplicate', reason: 'already running this shard' }
  return undefined
}
