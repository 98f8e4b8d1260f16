import { describe, expect, it } from 'vitest'
import { LEADER_LEASE_MS } from '../../actors/coordinator/replication.ts'
import {
  candidacy, decideVote, ELECTION_MARGIN_MS, ELECTION_STAGGER_MS, retryAt, standAt, tally, VOTE_TIMEOUT_MS, won
} from '../../actors/replica/election.ts'
import { admit } from '../../actors/replica/fencing.ts'
import { nextRole, roleOnLoad, type ReplicaRole, type RoleEvent } from '../../actors/replica/role.ts'
import type { Copy, Standing } from '../../actors/replica/state.ts'
import type { ReplicaRequest, VoteReply } from '../../protocols/campaign/replica.ts'

const ID = 'c-elect00001'
/** a copy held by replica r2 of a campaign coordinated by `co` at term 1, with replicas r1, r2, r3 */
const copy = (over: Partial<Copy> = {}): Copy => ({ term: 1, logTerm: 1, seq: 10, coordinator: 'co', members: ['r1', 'r2', 'r3'], ...over })
const standing = (over: Partial<Standing> = {}): Standing => ({ role: 'follower', seenTerm: 0, eager: false, ...over })
const vote = (over: Partial<Extract<ReplicaRequest, { type: 'vote' }>> = {}): Extract<ReplicaRequest, { type: 'vote' }> =>
  ({ type: 'vote', campaignId: ID, term: 2, candidate: 'r1', lastTerm: 1, seq: 10, ...over })

describe('replica role transitions', () => {
  it('follows the documented state machine and nothing else', () => {
    const expectations: Array<[ReplicaRole, RoleEvent, ReplicaRole | undefined]> = [
      ['follower', 'stand', 'candidate'],
      ['follower', 'won', undefined],
      ['follower', 'lost', undefined],
      ['follower', 'superseded', undefined],
      ['candidate', 'won', 'leader'],
      ['candidate', 'lost', 'follower'],
      ['candidate', 'stand', undefined],
      // its own term may be higher still: the tally decides
      ['candidate', 'superseded', undefined],
      ['leader', 'superseded', 'follower'],
      ['leader', 'stand', undefined],
      ['leader', 'lost', undefined]
    ]
    for (const [from, event, to] of expectations) expect(nextRole(from, event), `${from} + ${event}`).toBe(to)
  })

  it('reads a copy back as leader only when this node took the campaign over', () => {
    expect(roleOnLoad('me', 'me')).toBe('leader')
    expect(roleOnLoad('co', 'me')).toBe('follower')
  })
})

describe('admitting a coordinator (fencing)', () => {
  it('refuses a lower term and a second coordinator in the same term, naming the coordinator it follows', () => {
    const c = copy({ term: 3, coordinator: 'co3' })
    expect(admit(c, standing(), { term: 2 }, 'co', true, 0)).toEqual({
      follow: false, refusal: { ok: false, code: 'superseded', term: 3, seq: 10, coordinator: 'co3', reason: expect.stringContaining('term 3 belongs to co3') }
    })
    expect(admit(c, standing(), { term: 3 }, 'r1', true, 0)).toMatchObject({ follow: false, refusal: { code: 'term-taken', term: 3, coordinator: 'co3' } })
    expect(admit(c, standing(), { term: 3 }, 'co3', false, 0)).toEqual({ follow: false })
  })

  it('follows a higher term at once but confirms it only after the previous coordinator\'s grant ran out', () => {
    const c = copy()
    const s = standing({ grant: { peer: 'co', until: 1000 } })
    const first = admit(c, s, { term: 2 }, 'r1', false, 400)
    // followed (the old coordinator is fenced from now on), but not confirmed, and said with the sender's own term
    expect(first).toMatchObject({ follow: true, refusal: { ok: false, code: 'leased', term: 2, reason: expect.stringContaining('600 ms') } })
    expect(first.refusal?.coordinator).toBeUndefined()
    // the replica follows it now
    c.term = 2
    c.coordinator = 'r1'
    expect(admit(c, s, { term: 2 }, 'r1', false, 999)).toMatchObject({ follow: false, refusal: { code: 'leased' } })
    expect(admit(c, s, { term: 1 }, 'co', true, 999)).toMatchObject({ refusal: { code: 'superseded', term: 2, coordinator: 'r1' } })
    expect(admit(c, s, { term: 2 }, 'r1', false, 1000)).toEqual({ follow: false })
  })

  it('takes a higher term only from a replica of the campaign, its coordinator or a trusted peer', () => {
    expect(admit(copy(), standing(), { term: 2 }, 'stranger', false, 0)).toMatchObject({ follow: false, refusal: { code: 'not-member', term: 1 } })
    expect(admit(copy(), standing(), { term: 2 }, 'stranger', true, 0)).toEqual({ follow: true })
    expect(admit(copy(), standing(), { term: 2 }, 'r3', false, 0)).toEqual({ follow: true })
  })

  it('confirms nobody else while a vote it gave is in force, except the candidate and later terms', () => {
    const s = standing({ promise: { candidate: 'r1', term: 2, until: 3000 } })
    // the old coordinator, back after all: not now, and not followed
    expect(admit(copy(), s, { term: 1 }, 'co', true, 100)).toMatchObject({ follow: false, refusal: { code: 'voted', term: 1, reason: expect.stringContaining('voted for r1 in term 2') } })
    expect(admit(copy(), s, { term: 2 }, 'r1', false, 100)).toEqual({ follow: true })
    expect(admit(copy(), s, { term: 3 }, 'r3', false, 100)).toEqual({ follow: true })
    // the election over: the old coordinator is confirmed again
    expect(admit(copy(), s, { term: 1 }, 'co', true, 3000)).toEqual({ follow: false })
  })
})

describe('deciding a vote', () => {
  it('gives one vote a term: granted with a promise for a lease, then refused to a rival of the same term', () => {
    const c = copy()
    const s = standing()
    const d = decideVote(c, s, vote(), 5000)
    expect(d).toEqual({
      reply: { granted: true, code: 'granted', term: 2 }, seenTerm: 2, eager: false, promise: { candidate: 'r1', term: 2, until: 5000 + LEADER_LEASE_MS }
    })
    // what the actor records durably
    c.votedTerm = 2
    c.votedFor = 'r1'
    expect(decideVote(c, s, vote({ candidate: 'r3' }), 5001).reply).toMatchObject({ granted: false, code: 'voted', term: 2 })
    // the same candidate asking again (a retry) gets the same vote
    expect(decideVote(c, s, vote(), 5002).reply).toMatchObject({ granted: true, code: 'granted' })
    // a later term is a new election
    expect(decideVote(c, s, vote({ candidate: 'r3', term: 3 }), 5003).reply).toMatchObject({ granted: true, code: 'granted', term: 3 })
  })

  it('refuses terms that already have a coordinator, and candidates that are not replicas', () => {
    expect(decideVote(copy({ term: 2 }), standing(), vote(), 0)).toMatchObject({ reply: { granted: false, code: 'term-taken', term: 2 }, seenTerm: 2 })
    // a stranger's term is not remembered
    expect(decideVote(copy(), standing(), vote({ candidate: 'x', term: 9 }), 0)).toMatchObject({ reply: { granted: false, code: 'not-member' }, seenTerm: 0 })
  })

  it('refuses while the coordinator\'s grant is in force, unless the candidate is the one it confirmed', () => {
    const s = standing({ grant: { peer: 'co', until: 1000 } })
    expect(decideVote(copy(), s, vote(), 999).reply).toMatchObject({ granted: false, code: 'leased', reason: expect.stringContaining('co') })
    expect(decideVote(copy(), s, vote(), 1000).reply.code).toBe('granted')
    expect(decideVote(copy(), standing({ grant: { peer: 'r1', until: 1000 } }), vote(), 0).reply.code).toBe('granted')
  })

  it('refuses a candidate whose copy is behind, by term then by seq, and then stands at once instead of waiting its turn', () => {
    const behindByTerm = decideVote(copy({ logTerm: 2, term: 2 }), standing(), vote({ term: 3, lastTerm: 1, seq: 99 }), 0)
    expect(behindByTerm).toMatchObject({ reply: { granted: false, code: 'behind' }, eager: true })
    const behindBySeq = decideVote(copy(), standing(), vote({ seq: 9 }), 0)
    expect(behindBySeq).toMatchObject({ reply: { granted: false, code: 'behind', reason: expect.stringContaining('seq 9') }, eager: true })
    // as new, or newer: granted
    expect(decideVote(copy(), standing(), vote({ seq: 10 }), 0).reply.code).toBe('granted')
    expect(decideVote(copy(), standing(), vote({ lastTerm: 2, seq: 0 }), 0).reply.code).toBe('granted')

    // r3 (third in member order) waits two staggers normally, none once eager
    const s = standing({ grant: { peer: 'co', until: 1000 } })
    expect(standAt(s, 500, 2)).toBe(1000 + ELECTION_MARGIN_MS + 2 * ELECTION_STAGGER_MS)
    s.eager = behindBySeq.eager
    expect(standAt(s, 500, 2)).toBe(1000 + ELECTION_MARGIN_MS)
  })
})

describe('when to stand', () => {
  it('after the coordinator is dead and its lease over plus a margin, staggered by member order', () => {
    const s = standing({ grant: { peer: 'co', until: 3000 } })
    expect(standAt(s, 1000, 0)).toBe(3000 + ELECTION_MARGIN_MS)
    expect(standAt(s, 1000, 1)).toBe(3000 + ELECTION_MARGIN_MS + ELECTION_STAGGER_MS)
    // seen dead only after the lease was over: from then
    expect(standAt(s, 5000, 0)).toBe(5000)
    expect(standAt(standing(), 5000, 1)).toBe(5000 + ELECTION_STAGGER_MS)
  })

  it('not before its next try after a lost election, nor while a vote it gave is in force', () => {
    expect(standAt(standing({ nextTry: 9000 }), 1000, 0)).toBe(9000)
    expect(standAt(standing({ promise: { candidate: 'r1', term: 2, until: 7000 } }), 1000, 0)).toBe(7000)
    expect(retryAt(1000, false, 0)).toBe(1000 + ELECTION_STAGGER_MS)
    // turned down by a newer copy: that replica stands next, so this one waits longer
    expect(retryAt(1000, true, 0)).toBe(1000 + 3 * ELECTION_STAGGER_MS)
    expect(retryAt(1000, false, 1)).toBe(1000 + 3 * ELECTION_STAGGER_MS)
  })

  it('stands for a term above every term it followed, voted in or saw asked for, and votes for itself', () => {
    const c = candidacy(ID, copy({ term: 2, votedTerm: 4, logTerm: 2, seq: 7 }), standing({ seenTerm: 3 }), 'r2', 100)
    expect(c).toEqual({
      term: 5,
      needed: 2,
      promise: { candidate: 'r2', term: 5, until: 100 + LEADER_LEASE_MS + VOTE_TIMEOUT_MS },
      ask: { type: 'vote', campaignId: ID, term: 5, candidate: 'r2', lastTerm: 2, seq: 7 }
    })
    expect(candidacy(ID, copy(), standing({ seenTerm: 6 }), 'r2', 0).term).toBe(7)
  })
})

describe('tallying an election', () => {
  const granted: VoteReply = { granted: true, code: 'granted', term: 5 }
  const refused = (code: VoteReply['code'], term = 5, reason?: string): VoteReply => ({ granted: false, code, term, reason })

  it('needs a majority of the replicas, its own vote included, for 1, 2, 3 and 5 replicas', () => {
    const members = (n: number): string[] => Array.from({ length: n }, (_, i) => `r${i + 1}`)
    const cases: Array<[number, number]> = [[1, 1], [2, 2], [3, 2], [5, 3]]
    for (const [n, needed] of cases) {
      const c = copy({ members: members(n), votedTerm: undefined })
      const stood = candidacy(ID, c, standing(), 'r1', 0)
      expect(stood.needed, `${n} replicas`).toBe(needed)
      c.votedTerm = stood.term
      c.votedFor = 'r1'
      const others = n - 1
      for (let yes = 0; yes <= others; yes++) {
        const replies = [...Array<VoteReply>(yes).fill(granted), ...Array<undefined>(others - yes).fill(undefined)]
        const t = tally(stood.term, replies)
        expect(t.votes).toBe(yes + 1)
        expect(won(c, 'r1', stood.term, t.votes, stood.needed), `${n} replicas, ${yes + 1} votes`).toBe(yes + 1 >= needed)
      }
    }
  })

  it('switches on the code, never on the reason text, and keeps the highest term a voter named', () => {
    const t = tally(5, [refused('behind', 5, 'a newer copy here'), refused('leased', 7, 'the copy is behind, or so the text says'), undefined])
    expect(t).toEqual({ votes: 1, higher: 7, behind: true })
    expect(tally(5, [refused('voted', 5, 'behind')]).behind).toBe(false)
  })

  it('loses when a coordinator of its term or later reached it meanwhile, or its vote went elsewhere', () => {
    const c = copy({ votedTerm: 5, votedFor: 'r2' })
    expect(won(c, 'r2', 5, 2, 2)).toBe(true)
    expect(won({ ...c, term: 5 }, 'r2', 5, 2, 2)).toBe(false)
    expect(won({ ...c, votedTerm: 6, votedFor: 'r3' }, 'r2', 5, 2, 2)).toBe(false)
    expect(won(c, 'r2', 5, 1, 2)).toBe(false)
  })
})
