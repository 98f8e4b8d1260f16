/**
 * A replica's role in one campaign, as data. Every change of role goes
 * through `nextRole`; nothing else assigns one.
 *
 *   FOLLOWER ──stand──▶ CANDIDATE ──won──▶ LEADER
 *      ▲                    │                 │
 *      ├───────lost─────────┘                 │
 *      └─────────────superseded───────────────┘
 *
 * A leader has handed the campaign to this node's coordinator, which runs it.
 * A candidate that hears from a coordinator of a higher term than it followed
 * stays one until its tally: its own term may be higher still, and the tally
 * says `lost` when it is not.
 */
export type ReplicaRole = 'follower' | 'candidate' | 'leader'

export type RoleEvent =
  /** the coordinator is dead, and every promise to it and every vote given has run out: ask for votes */
  | 'stand'
  /** a quorum voted for it, and no coordinator of its term or later reached it meanwhile */
  | 'won'
  /** too few votes (refused, unanswered, timed out), or a coordinator of its term or later reached it meanwhile */
  | 'lost'
  /** a coordinator of a higher term than the one it followed reached it */
  | 'superseded'

const TABLE: Record<ReplicaRole, Partial<Record<RoleEvent, ReplicaRole>>> = {
  follower: { stand: 'candidate' },
  candidate: { won: 'leader', lost: 'follower' },
  leader: { superseded: 'follower' }
}

/** The role after `event`, or undefined when the event does not change it. */
export function nextRole (role: ReplicaRole, event: RoleEvent): ReplicaRole | undefined {
  return TABLE[role][event]
}

/**
 * The role of a copy read back from disk: an election in flight does not
 * survive a restart, and a replica that took a campaign over names itself as
 * its coordinator.
 */
export function roleOnLoad (coordinator: string, self: string): ReplicaRole {
  return coordinator === self ? 'leader' : 'follower'
}
