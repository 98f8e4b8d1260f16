/** A request as it leaves for another peer. */
export interface RemoteRequest {
  kind: 'tell' | 'ask'
  to: string
  body: unknown
  /** how long the asker will still wait; the receiver skips the message once it has passed */
  ttlMs?: number
}

/** The narrow interface the actor host needs from a wire transport (ActorTransport implements it). */
export interface RemoteTransport {
  /** resolves with the reply body of an ask, or undefined for a tell once it is written */
  request: (peer: string, req: RemoteRequest, opts: { signal: AbortSignal }) => Promise<unknown>
}
