import type { ServerResponse } from 'node:http'
import { badRequest } from './errors.ts'
import type { Resource } from './resources.ts'
import { selectorsFrom } from './selectors.ts'
import type { Store, StoreEvent } from './store.ts'
import type { KObject } from './wire.ts'

/**
 * `?watch=true`: one JSON event per line ({"type","object"}), as
 * kube-apiserver streams them. Without a resourceVersion (or with "0") the
 * objects there now come first as ADDED; with one, the events after it
 * (ERROR 410 Expired when history no longer reaches back that far). A
 * change that moves an object into or out of the selectors arrives as
 * ADDED or DELETED. The stream ends after timeoutSeconds (default 30 min).
 */
const DEFAULT_TIMEOUT_S = 1800

export interface WatchRequest {
  resource: Resource
  namespace: string | undefined
  query: URLSearchParams
}

/** starts the stream; returns its stop function (the server calls it when it closes) */
export function serveWatch (store: Store, req: WatchRequest, res: ServerResponse, onEnd: () => void): () => void {
  const match = selectorsFrom(req.resource, req.query)
  const rv = req.query.get('resourceVersion') ?? ''
  if (rv !== '' && !/^\d+$/.test(rv)) throw badRequest(`invalid resource version: "${rv}"`)
  if (req.query.get('sendInitialEvents') === 'true') throw badRequest('fake-k8s does not implement sendInitialEvents (watch-list); list, then watch from the list\'s resourceVersion')
  const timeoutS = Number(req.query.get('timeoutSeconds') ?? DEFAULT_TIMEOUT_S)
  const inScope = (obj: KObject): boolean => req.namespace === undefined || obj.metadata.namespace === req.namespace

  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' })
  // the client's request completes on the headers; a quiet watch has nothing else to send for a while
  res.flushHeaders()
  const send = (type: string, object: unknown): void => { res.write(JSON.stringify({ type, object }) + '\n') }
  const deliver = (event: StoreEvent): void => {
    if (event.resource !== req.resource || !inScope(event.object)) return
    const now = match(event.object)
    if (event.type !== 'MODIFIED') {
      if (now) send(event.type, event.object)
      return
    }
    const was = event.old !== undefined && match(event.old)
    if (now) send(was ? 'MODIFIED' : 'ADDED', event.object)
    else if (was) send('DELETED', event.object)
  }

  let ended = false
  let unsubscribe = (): void => {}
  const end = (): void => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    unsubscribe()
    res.end()
    onEnd()
  }
  const timer = setTimeout(end, timeoutS * 1000)
  res.on('close', end)

  if (rv === '' || rv === '0') {
    for (const obj of store.list(req.resource, req.namespace)) if (match(obj)) send('ADDED', obj)
  } else {
    const events = store.since(Number(rv))
    if (events === undefined) {
      send('ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${rv} (${store.resourceVersion})`, reason: 'Expired', code: 410 })
      end()
      return end
    }
    for (const event of events) deliver(event)
  }
  unsubscribe = store.subscribe(deliver)
  return end
}
