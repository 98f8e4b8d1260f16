import type { ReplicaRequest, VoteCode, VoteReply } from '../../protocols/campaign/replica.ts'
import { LEADER_LEASE_MS, quorums } from '../coordinator/replication.ts'
import type { Copy, Standing, VotePromise } from './state.ts'

/** replicas stand for election one after another, in their order in the member list */
export const ELECTION_STAGGER_MS = 1000
/**
 * A candidate stands this long after its own promise to the dead coordinator
 * ran out: the other replicas heard from it a little later than this one
 * did, and refuse to vote until their promises run out too.
 */
export const ELECTION_MARGIN_MS = 300
export const VOTE_TIMEOUT_MS = 3000

type VoteRequest = Extract<ReplicaRequest, { type: 'vote' }>

export interface VoteDecision {
  reply: VoteReply
  /** the highest term candidates asked for, this one included */
  seenTerm: number
  /** the candidate's copy is behind this one: stand next, without waiting its turn */
  eager: boolean
  /** granted: the vote to record durably, and the promise it makes */
  promise?: VotePromise
}

/**
 * One vote a term, for a replica of the campaign whose copy is at least as
 * new as this one, and only when this replica's promise to the coordinator
 * has run out. The vote is itself a promise: for a lease, this replica
 * confirms nobody else, so the candidate can take over without a rival.
 */
export function decideVote (copy: Copy, standing: Pick<Standing, 'grant' | 'seenTerm'>, msg: VoteRequest, now: number): VoteDecision {
  let seenTerm = standing.seenTerm
  const refuse = (code: VoteCode, reason: string, eager = false): VoteDecision =>
    ({ reply: { granted: false, code, term: Math.max(copy.term, copy.votedTerm ?? 0), reason }, seenTerm, eager })
  if (!copy.members.includes(msg.candidate)) return refuse('not-member', 'the candidate is not a replica of this campaign')
  seenTerm = Math.max(seenTerm, msg.term)
  if (msg.term <= copy.term) return refuse('term-taken', `term ${copy.term} already has a coordinator`)
  if (copy.votedTerm != null && (msg.term < copy.votedTerm || (msg.term === copy.votedTerm && copy.votedFor !== msg.candidate))) {
    return refuse('voted', `already voted in term ${copy.votedTerm}`)
  }
  const grant = standing.grant
  if (grant != null && grant.until > now && grant.peer !== msg.candidate) return refuse('leased', `the coordinator ${grant.peer} confirmed itself less than a lease ago`)
  if (msg.lastTerm < copy.logTerm || (msg.lastTerm === copy.logTerm && msg.seq < copy.seq)) {
    return refuse('behind', `the candidate's copy (term ${msg.lastTerm}, seq ${msg.seq}) is behind this one (term ${copy.logTerm}, seq ${copy.seq})`, true)
  }
  return {
    reply: { granted: true, code: 'granted', term: msg.term },
    seenTerm,
    eager: false,
    promise: { candidate: msg.candidate, term: msg.term, until: now + LEADER_LEASE_MS }
  }
}

/**
 * When a follower whose coordinator is dead (since `deadSince`) stands: after
 * its promise to the coordinator ran out and a margin, the first in member
 * order first and each next one a stagger later (at once when it turned down
 * a candidate with an older copy), not before its next try after a lost
 * election, nor while a vote it gave is in force.
 */
export function standAt (standing: Pick<Standing, 'grant' | 'promise' | 'nextTry' | 'eager'>, deadSince: number, order: number): number {
  const stagger = standing.eager ? 0 : order * ELECTION_STAGGER_MS
  const leaseOver = Math.max(deadSince, (standing.grant?.until ?? 0) + ELECTION_MARGIN_MS)
  return Math.max(leaseOver + stagger, standing.nextTry ?? 0, standing.promise?.until ?? 0)
}

export interface Candidacy {
  term: number
  /** votes needed, its own included */
  needed: number
  /** its vote for itself: it confirms nobody else while its election runs */
  promise: VotePromise
  ask: VoteRequest
}

/** Standing for `term`: above every term this replica has followed, voted in or seen asked for. */
export function candidacy (campaignId: string, copy: Copy, standing: Pick<Standing, 'seenTerm'>, self: string, now: number): Candidacy {
  const term = Math.max(copy.term, copy.votedTerm ?? 0, standing.seenTerm) + 1
  return {
    term,
    needed: quorums(copy.members.length).elect,
    promise: { candidate: self, term, until: now + LEADER_LEASE_MS + VOTE_TIMEOUT_MS },
    ask: { type: 'vote', campaignId, term, candidate: self, lastTerm: copy.logTerm, seq: copy.seq }
  }
}

export interface Tally {
  /** its own included */
  votes: number
  /** the highest term a voter named */
  higher: number
  /** a voter holds a newer copy */
  behind: boolean
}

/** The answers of the other replicas to a candidate of `term` (undefined: none came). */
export function tally (term: number, replies: Array<VoteReply | undefined>): Tally {
  const result: Tally = { votes: 1, higher: term, behind: false }
  for (const r of replies) {
    if (r == null) continue
    if (r.granted) result.votes++
    if (r.code === 'behind') result.behind = true
    result.higher = Math.max(result.higher, r.term)
  }
  return result
}

/**
 * Whether the candidacy for `term` won: enough votes, no coordinator of its
 * term or later reached this replica meanwhile, and its vote is still its own.
 */
export function won (copy: Copy, self: string, term: number, votes: number, needed: number): boolean {
  return votes >= needed && copy.term < term && copy.votedTerm === term && copy.votedFor === self
}

/**
 * When a candidate that lost may stand again: a stagger or more, randomised so
 * two losers do not collide again, and later still when a replica with a
 * newer copy turned it down (that one stands next: give it room).
 */
export function retryAt (now: number, behind: boolean, random: number): number {
  return now + ELECTION_STAGGER_MS * ((behind ? 3 : 1) + random * 2)
}
