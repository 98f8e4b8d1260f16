/**
 * Failures as the API server sends them: a `Status` object (kind Status,
 * apiVersion v1, status Failure) with the HTTP code, a reason a client can
 * switch on, and the message kube-apiserver words the same way.
 */
export interface StatusCause {
  reason: string
  message: string
  field: string
}

export interface Status {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure' | 'Success'
  message?: string
  reason?: string
  details?: { name?: string, group?: string, kind?: string, uid?: string, causes?: StatusCause[], retryAfterSeconds?: number }
  code: number
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  413: 'RequestEntityTooLarge',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout'
}

export class ApiError extends Error {
  override name = 'ApiError'
  readonly status: Status

  constructor (status: Status) {
    super(status.message)
    this.status = status
  }
}

export function failure (code: number, message: string, reason = REASONS[code] ?? 'Unknown', details?: Status['details']): ApiError {
  return new ApiError({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details === undefined ? {} : { details }), code })
}

/** "jobs.batch", "pods": how messages name a resource */
export function qualified (resource: string, group: string): string {
  return group === '' ? resource : `${resource}.${group}`
}

export const notFound = (resource: string, group: string, name: string): ApiError =>
  failure(404, `${qualified(resource, group)} "${name}" not found`, 'NotFound', { name, ...(group === '' ? {} : { group }), kind: resource })

export const alreadyExists = (resource: string, group: string, name: string): ApiError =>
  failure(409, `${qualified(resource, group)} "${name}" already exists`, 'AlreadyExists', { name, ...(group === '' ? {} : { group }), kind: resource })

export const conflict = (resource: string, group: string, name: string, why: string): ApiError =>
  failure(409, `Operation cannot be fulfilled on ${qualified(resource, group)} "${name}": ${why}`, 'Conflict', { name, ...(group === '' ? {} : { group }), kind: resource })

export const forbidden = (resource: string, group: string, name: string, why: string): ApiError =>
  failure(403, `${qualified(resource, group)} "${name}" is forbidden: ${why}`, 'Forbidden', { name, ...(group === '' ? {} : { group }), kind: resource })

export const badRequest = (message: string): ApiError => failure(400, message)

/** 422: `Job.batch "x" is invalid: spec.y: Required value`, one cause per field error */
export function invalid (kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const listed = causes.map(c => `${c.field}: ${c.message}`)
  const what = listed.length === 1 ? listed[0] : `[${listed.join(', ')}]`
  return failure(422, `${group === '' ? kind : `${kind}.${group}`} "${name}" is invalid: ${what}`, 'Invalid', { name, ...(group === '' ? {} : { group }), kind, causes })
}

/** a Status with the reason that belongs to the code: what failNext answers */
export function statusFor (method: string, code: number, message: string): ApiError {
  const reason = code === 409 && method === 'POST' ? 'AlreadyExists' : REASONS[code]
  return failure(code, message, reason)
}
