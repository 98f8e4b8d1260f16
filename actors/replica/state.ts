import type { BlobRef } from '../../protocols/campaign/spec.ts'
import type { ReplicaRole } from './role.ts'

/** What a replica keeps (durably) about each campaign it holds a copy of. */
export interface ReplicaMeta {
  campaignId: string
  /** the term of the coordinator this replica follows: raised only when a coordinator of a higher term reaches it (fencing) */
  term: number
  /** the term of the coordinator whose changes the copy holds */
  logTerm: number
  /** the last change applied */
  seq: number
  /** this node itself once it took the campaign over */
  coordinator: string
  members: string[]
  /** the last election this replica voted in, and for whom (one vote a term) */
  votedTerm?: number
  votedFor?: string
  files: BlobRef[]
  /** the workload's files are here: this replica can take over */
  filesReady: boolean
}

/** What the decisions read of a copy. */
export type Copy = Pick<ReplicaMeta, 'term' | 'logTerm' | 'seq' | 'coordinator' | 'members' | 'votedTerm' | 'votedFor'>

/** A promise not to confirm, or vote for, anyone else until `until`. */
export interface Grant {
  peer: string
  until: number
}

/** A vote given (by a candidate, to itself): until `until`, no other coordinator is confirmed. */
export interface VotePromise {
  candidate: string
  term: number
  until: number
}

/** What a replica holds in memory about one campaign, beside its durable copy. */
export interface Standing {
  role: ReplicaRole
  /** the coordinator this replica last confirmed, and until when it promised not to confirm or elect another */
  grant?: Grant
  promise?: VotePromise
  /** since when this replica has seen the coordinator dead */
  deadSince?: number
  /** it lost an election: not before then again */
  nextTry?: number
  /** the highest term candidates asked for (kept apart from the copy's term, which fences coordinators) */
  seenTerm: number
  /** it turned down a candidate with an older copy: it stands next, without waiting its turn */
  eager: boolean
}
