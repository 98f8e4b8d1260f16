import { randomBytes, timingSafeEqual } from 'node:crypto'

/** A login ticket is redeemed by the browser right after `zp dashboard` asks for it. */
export const TICKET_TTL_MS = 60_000
export const SESSION_TTL_MS = 12 * 3600_000
/** bounds what a caller holding the API token can make the node remember */
const MAX_PENDING = 1000

export interface DashboardSession {
  id: string
  /** sent back by the page with every POST (x-csrf-token) */
  csrf: string
  expiresAt: number
}

function secret (): string {
  return randomBytes(32).toString('base64url')
}

function same (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * One-time login tickets and the sessions they open, in memory: the API token
 * never goes into a URL; a ticket is spent on first use and short-lived, so a
 * URL left in a browser's history opens nothing.
 */
export class DashboardLogins {
  readonly #tickets = new Map<string, number>()
  readonly #sessions = new Map<string, DashboardSession>()
  readonly #now: () => number
  readonly #ticketTtlMs: number
  readonly #sessionTtlMs: number

  constructor (opts: { now?: () => number, ticketTtlMs?: number, sessionTtlMs?: number } = {}) {
    this.#now = opts.now ?? Date.now
    this.#ticketTtlMs = opts.ticketTtlMs ?? TICKET_TTL_MS
    this.#sessionTtlMs = opts.sessionTtlMs ?? SESSION_TTL_MS
  }

  issueTicket (): { ticket: string, expiresAt: number } {
    this.#prune()
    if (this.#tickets.size >= MAX_PENDING) this.#tickets.delete(this.#tickets.keys().next().value!)
    const ticket = secret()
    const expiresAt = this.#now() + this.#ticketTtlMs
    this.#tickets.set(ticket, expiresAt)
    return { ticket, expiresAt }
  }

  /** Spends the ticket: a new session, or null when it is unknown, used or expired. */
  redeem (ticket: string | undefined): DashboardSession | null {
    if (ticket == null) return null
    const expiresAt = this.#tickets.get(ticket)
    if (expiresAt == null) return null
    this.#tickets.delete(ticket)
    if (expiresAt <= this.#now()) return null
    this.#prune()
    if (this.#sessions.size >= MAX_PENDING) this.#sessions.delete(this.#sessions.keys().next().value!)
    const session = { id: secret(), csrf: secret(), expiresAt: this.#now() + this.#sessionTtlMs }
    this.#sessions.set(session.id, session)
    return session
  }

  session (id: string | undefined): DashboardSession | null {
    if (id == null) return null
    const session = this.#sessions.get(id)
    if (session == null) return null
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(id)
      return null
    }
    return session
  }

  csrfMatches (session: DashboardSession, given: string | undefined): boolean {
    return given != null && same(session.csrf, given)
  }

  #prune (): void {
    const now = this.#now()
    for (const [ticket, expiresAt] of this.#tickets) if (expiresAt <= now) this.#tickets.delete(ticket)
    for (const [id, s] of this.#sessions) if (s.expiresAt <= now) this.#sessions.delete(id)
  }
}
