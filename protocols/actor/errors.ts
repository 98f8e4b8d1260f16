/**
 * Typed actor errors and the wire statuses they travel as. Tell them apart by
 * `name` (or `instanceof`), never by message text. Each carries its status, so
 * a remote failure is re-raised on the asking side as the same class.
 */
export const ACTOR_STATUSES = [
  'ok', 'timeout', 'no_such_actor', 'peer_unreachable', 'not_authorized', 'invalid_message',
  'unsupported_version', 'frame_too_large', 'actor_failed', 'mailbox_full', 'stopping', 'unavailable'
] as const
export type ActorStatus = typeof ACTOR_STATUSES[number]

export abstract class ActorError extends Error {
  abstract readonly status: Exclude<ActorStatus, 'ok'>
}

export class AskTimeoutError extends ActorError {
  override name = 'AskTimeoutError'
  readonly status = 'timeout' as const
}

export class NoSuchActorError extends ActorError {
  override name = 'NoSuchActorError'
  readonly status = 'no_such_actor' as const
}

export class PeerUnreachableError extends ActorError {
  override name = 'PeerUnreachableError'
  readonly status = 'peer_unreachable' as const
}

export class NotAuthorizedError extends ActorError {
  override name = 'NotAuthorizedError'
  readonly status = 'not_authorized' as const
}

export class InvalidMessageError extends ActorError {
  override name = 'InvalidMessageError'
  readonly status = 'invalid_message' as const
}

export class UnsupportedVersionError extends ActorError {
  override name = 'UnsupportedVersionError'
  readonly status = 'unsupported_version' as const
}

export class FrameTooLargeError extends ActorError {
  override name = 'FrameTooLargeError'
  readonly status = 'frame_too_large' as const
}

/** The actor threw while handling this message (it is restarted by its supervisor). */
export class ActorFailedError extends ActorError {
  override name = 'ActorFailedError'
  readonly status = 'actor_failed' as const
}

export class MailboxFullError extends ActorError {
  override name = 'MailboxFullError'
  readonly status = 'mailbox_full' as const
}

/** The actor or its host is stopping and will not handle the message. */
export class ActorStoppingError extends ActorError {
  override name = 'ActorStoppingError'
  readonly status = 'stopping' as const
}

/**
 * The actor cannot do this now (its storage is full, a dependency is down)
 * but is fine otherwise: try again later. Thrown by a behaviour, it answers
 * the ask without restarting the actor.
 */
export class UnavailableError extends ActorError {
  override name = 'UnavailableError'
  readonly status = 'unavailable' as const
}

const BY_STATUS: Record<Exclude<ActorStatus, 'ok'>, new (message: string) => ActorError> = {
  timeout: AskTimeoutError,
  no_such_actor: NoSuchActorError,
  peer_unreachable: PeerUnreachableError,
  not_authorized: NotAuthorizedError,
  invalid_message: InvalidMessageError,
  unsupported_version: UnsupportedVersionError,
  frame_too_large: FrameTooLargeError,
  actor_failed: ActorFailedError,
  mailbox_full: MailboxFullError,
  stopping: ActorStoppingError,
  unavailable: UnavailableError
}

export function errorForStatus (status: Exclude<ActorStatus, 'ok'>, message: string): ActorError {
  return new BY_STATUS[status](message)
}

export function isActorError (err: unknown): err is ActorError {
  return err instanceof ActorError
}
