import type { ServerResponse } from 'node:http'
import { badRequest, notFound } from './errors.ts'
import type { LogBook } from './logs.ts'
import type { Store } from './store.ts'
import type { Pod } from './wire.ts'

/**
 * GET pods/{name}/log: the container's output as text/plain, with
 * container, previous, tailLines, limitBytes and follow; a container that
 * has not started yet is a 400 saying what it waits for, as the kubelet
 * answers through the API server.
 */
const PULLING = new Set(['ErrImagePull', 'ImagePullBackOff'])

export function servePodLog (store: Store, logs: LogBook, namespace: string, name: string, query: URLSearchParams, res: ServerResponse): void {
  const pod = store.get<Pod>('pods', namespace, name)
  if (pod === undefined) throw notFound('pods', '', name)
  const container = pod.spec.containers[0]!.name
  const asked = query.get('container')
  if (asked !== null && asked !== '' && asked !== container) throw badRequest(`container ${asked} is not valid for pod ${name}`)
  for (const unsupported of ['timestamps', 'sinceSeconds', 'sinceTime']) {
    const v = query.get(unsupported)
    if (v !== null && v !== 'false') throw badRequest(`fake-k8s does not implement ${unsupported} for pods/log`)
  }
  if (pod.spec.nodeName === undefined) throw badRequest(`pod ${name} does not have a host assigned`)
  const uid = pod.metadata.uid!
  const previous = query.get('previous') === 'true'
  if (previous && !logs.has(uid, true)) throw badRequest(`previous terminated container "${container}" in pod "${name}" not found`)
  if (!logs.has(uid)) {
    const reason = pod.status.containerStatuses?.[0]?.state.waiting?.reason ?? 'ContainerCreating'
    throw badRequest(`container "${container}" in pod "${name}" is waiting to start: ${PULLING.has(reason) ? 'trying and failing to pull image' : reason}`)
  }
  const tail = query.get('tailLines')
  const limit = query.get('limitBytes')
  const text = logs.text(uid, { previous, ...(tail === null ? {} : { tailLines: Number(tail) }), ...(limit === null ? {} : { limitBytes: Number(limit) }) })
  const running = pod.status.containerStatuses?.[0]?.state.running !== undefined
  if (query.get('follow') !== 'true' || previous || !running) {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) })
    res.end(text)
    return
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' })
  res.flushHeaders()
  if (text !== '') res.write(text)
  const stop = logs.follow(uid, chunk => {
    if (chunk === null) res.end()
    else res.write(chunk)
  })
  res.on('close', stop)
}
