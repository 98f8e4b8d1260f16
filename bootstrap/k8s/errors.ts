import { describeError } from '../../protocols/common/errors.ts'

export type K8sErrorCode =
  /** no kubeconfig, a kubeconfig that cannot be read, or a context it does not have */
  | 'config'
  /** the API server does not answer at the kubeconfig's address */
  | 'unreachable'
  /** the call did not finish within the client's timeout */
  | 'timeout'
  /** 401: the credentials were refused */
  | 'unauthorized'
  /** 403: RBAC does not allow the call */
  | 'forbidden'
  /** 404: the namespace does not exist */
  | 'no-namespace'
  /** 404: the object does not exist */
  | 'not-found'
  /** 409: an object of that name exists */
  | 'conflict'
  /** 422 (or 400): the server refused the object */
  | 'invalid'
  /** another status */
  | 'failed'

/** A Kubernetes API call failed; the message names the cause and the fix. */
export class K8sError extends Error {
  override name = 'K8sError'
  readonly code: K8sErrorCode
  /** the HTTP status, when the server answered */
  readonly status?: number

  constructor (code: K8sErrorCode, message: string, options?: ErrorOptions & { status?: number }) {
    super(message, options)
    this.code = code
    if (options?.status != null) this.status = options.status
  }
}

/** What the bridge calls, so what RBAC must allow it in its namespace (deploy/k8s/bridge-rbac.yaml grants exactly this). */
export const RBAC_RULES: ReadonlyArray<{ apiGroup: string, resource: string, verbs: readonly string[] }> = [
  { apiGroup: 'batch', resource: 'jobs', verbs: ['create', 'get', 'delete'] },
  { apiGroup: '', resource: 'secrets', verbs: ['create', 'update', 'delete'] },
  { apiGroup: '', resource: 'pods', verbs: ['list'] }
]
export const RBAC_NEEDED = RBAC_RULES.map(r => `${r.verbs.join(', ')} on ${r.resource}${r.apiGroup !== '' ? ` (${r.apiGroup})` : ''}`).join('; ')

/** One API call, as an error message names it. */
export interface K8sCall {
  /** e.g. 'create', 'delete', 'list' */
  verb: string
  /** e.g. 'Job', 'Secret', 'pods' */
  resource: string
  name?: string
  namespace: string
  /** the API server's address, from the kubeconfig */
  server: string
  /** the kubeconfig context used */
  context: string
}

/** The fields of a Kubernetes `Status` error body that the messages use. */
interface Status {
  message?: string
  reason?: string
  details?: { name?: string, kind?: string, causes?: Array<{ field?: string, message?: string, reason?: string }> }
}

/** client-node 2.x throws ApiException with the HTTP status in `.code` and the Status as a JSON string (sometimes parsed) in `.body`. */
function apiException (err: unknown): { code: number, status: Status } | undefined {
  if (err == null || typeof err !== 'object' || !('code' in err) || typeof err.code !== 'number' || !('body' in err)) return undefined
  let body: unknown = err.body
  if (typeof body === 'string') {
    const text = body
    try {
      body = JSON.parse(text)
    } catch {
      body = { message: text.trim().slice(0, 500) }
    }
  }
  return { code: err.code, status: body != null && typeof body === 'object' ? body as Status : {} }
}

/** ECONNREFUSED and the like, whether thrown as is or as fetch's `cause` */
function networkCode (err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e != null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^(E[A-Z_]+|UND_ERR_[A-Z_]+|[A-Z_]*CERT[A-Z_]*|DEPTH_ZERO_SELF_SIGNED_CERT)$/.test(code)) return code
  }
  return undefined
}

/**
 * The failure of one API call as a K8sError that says what was refused and
 * what to do: credentials, RBAC, the namespace, a name taken, the server's
 * validation causes, or the server's address.
 */
export function toK8sError (err: unknown, call: K8sCall): K8sError {
  if (err instanceof K8sError) return err
  const what = `${call.verb} ${call.resource}${call.name != null ? ` ${call.name}` : ''} in namespace ${call.namespace}`
  const api = apiException(err)
  if (api == null) {
    if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
      return new K8sError('timeout', `cannot ${what}: the Kubernetes API server at ${call.server} did not answer in time (${err.message}); check that it is up (kubectl --context ${call.context} cluster-info)`, { cause: err })
    }
    const net = networkCode(err)
    if (net != null) {
      return new K8sError('unreachable', `cannot ${what}: the Kubernetes API server at ${call.server} cannot be reached (${net}); check the kubeconfig's server and context ('${call.context}'), e.g. kubectl --context ${call.context} cluster-info`, { cause: err })
    }
    // client-node refusing the kubeconfig's cluster or user (plain http without insecure-skip-tls-verify, a failing exec plugin)
    return new K8sError('config', `cannot ${what} at ${call.server}: ${describeError(err)}; check the kubeconfig's cluster and user for context '${call.context}'`, { cause: err })
  }
  const { code, status } = api
  const said = status.message != null && status.message !== '' ? `: ${status.message}` : ''
  const opts = { cause: err, status: code }
  switch (code) {
    case 401:
      return new K8sError('unauthorized', `cannot ${what}: the API server at ${call.server} refused the credentials of kubeconfig context '${call.context}' (401 Unauthorized${said}); refresh them (log in again, e.g. gcloud container clusters get-credentials, aws eks update-kubeconfig, az aks get-credentials) or pass --kubeconfig/--context`, opts)
    case 403:
      return new K8sError('forbidden', `cannot ${what}: forbidden by RBAC (403${said}); the bridge's user (context '${call.context}') needs, in namespace ${call.namespace}: ${RBAC_NEEDED}; grant them with a Role and RoleBinding, or pass --namespace for one where it has them`, opts)
    case 404:
      if (status.details?.kind === 'namespaces') {
        return new K8sError('no-namespace', `cannot ${what}: namespace ${call.namespace} does not exist (404${said}); create it (kubectl create namespace ${call.namespace}) or pass --namespace`, opts)
      }
      return new K8sError('not-found', `cannot ${what}: not found (404${said})`, opts)
    case 409:
      return new K8sError('conflict', `cannot ${what}: it already exists (409${said}); delete the old one (kubectl -n ${call.namespace} delete ${call.resource.toLowerCase()}${call.name != null ? ` ${call.name}` : ''}) or bring the allocation up again, which picks a new name`, opts)
    case 400:
    case 422: {
      const causes = (status.details?.causes ?? []).map(c => [c.field, c.message ?? c.reason].filter(s => s != null && s !== '').join(': ')).filter(s => s !== '')
      const listed = causes.length > 0 ? `: ${causes.join('; ')}` : said
      return new K8sError('invalid', `the API server refused to ${what} as invalid (${code}${listed}); change the options it names (image, cpu, memory, gpus, gpu resource, node selector, service account)`, opts)
    }
    default:
      return new K8sError('failed', `cannot ${what}: the API server at ${call.server} answered ${code}${status.reason != null ? ` ${status.reason}` : ''}${said}`, opts)
  }
}
