import type { AppendRefusal, AppendReply } from '../../protocols/campaign/replica.ts'
import type { Copy, Standing } from './state.ts'

export interface Admission {
  /** the sender's term is higher: it is this replica's coordinator from now on (fencing every lower term), confirmed or not */
  follow: boolean
  /** the reply when the message may not be applied; absent when it may */
  refusal?: AppendReply
}

/**
 * Checks a coordinator's append or snapshot against a replica's copy.
 * Fencing: a lower term is refused (the sender learns it was replaced); a
 * higher term is followed at once, but confirmed only once the promise to the
 * coordinator before it has run out; and while a vote this replica gave is in
 * force, nobody else is confirmed. So no two coordinators ever hold its
 * confirmation at once. `trusted`: this node trusts the sender.
 */
export function admit (copy: Copy, standing: Pick<Standing, 'grant' | 'promise'>, msg: { term: number }, from: string, trusted: boolean, now: number): Admission {
  const refuse = (code: AppendRefusal, reason: string): Admission =>
    ({ follow: false, refusal: { ok: false, code, term: copy.term, seq: copy.seq, coordinator: copy.coordinator, reason } })
  if (msg.term < copy.term) return refuse('superseded', `superseded: term ${copy.term} belongs to ${copy.coordinator}`)
  if (msg.term === copy.term && copy.coordinator !== from) return refuse('term-taken', `term ${msg.term} belongs to another coordinator`)
  // not now: said with a term no higher than the sender's own, so it is not taken for a takeover
  const notNow = (code: AppendRefusal, reason: string, follow: boolean): Admission =>
    ({ follow, refusal: { ok: false, code, term: follow ? msg.term : copy.term, seq: copy.seq, reason } })
  const { promise, grant } = standing
  if (promise != null && promise.until > now && promise.candidate !== from && promise.term > msg.term) {
    return notNow('voted', `voted for ${promise.candidate} in term ${promise.term}; confirming nobody else until that election ends`, false)
  }
  const follow = msg.term > copy.term
  if (follow && from !== copy.coordinator && !copy.members.includes(from) && !trusted) return refuse('not-member', 'not a replica of this campaign')
  if (grant != null && grant.peer !== from && grant.until > now) return notNow('leased', `the previous coordinator's lease runs for ${grant.until - now} ms more`, follow)
  return { follow }
}
