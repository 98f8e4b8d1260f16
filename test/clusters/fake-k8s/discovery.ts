import { RESOURCES, type Resource } from './resources.ts'

/**
 * Legacy (unaggregated) discovery: /api, /api/v1, /apis, /apis/batch,
 * /apis/batch/v1, and /version. client-node and kubectl find resources
 * here; a client asking for aggregated discovery gets this form too and
 * falls back to it, as with an older server.
 */
export const VERSION = { major: '1', minor: '34', gitVersion: 'v1.34.0-fake-k8s', gitCommit: '0000000000000000000000000000000000000000', gitTreeState: 'clean', buildDate: '2025-08-27T00:00:00Z', goVersion: 'go1.24.6', compiler: 'gc', platform: 'linux/amd64' }

const BATCH = { groupVersion: 'batch/v1', version: 'v1' }

function resourceList (group: '' | 'batch'): Record<string, unknown> {
  const resources: Array<Record<string, unknown>> = []
  for (const [name, info] of Object.entries(RESOURCES) as Array<[Resource, typeof RESOURCES[Resource]]>) {
    if (info.group !== group) continue
    resources.push({
      name,
      singularName: info.singular,
      namespaced: info.namespaced,
      kind: info.kind,
      verbs: info.verbs,
      ...(info.shortNames === undefined ? {} : { shortNames: info.shortNames }),
      ...(info.categories === undefined ? {} : { categories: info.categories })
    })
    for (const [sub, s] of Object.entries(info.subresources)) {
      resources.push({ name: `${name}/${sub}`, singularName: '', namespaced: info.namespaced, ...(s.kind === 'Eviction' ? { group: 'policy', version: 'v1' } : {}), kind: s.kind, verbs: s.verbs })
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group === '' ? 'v1' : 'batch/v1', resources }
}

/** the discovery document at `path`, or undefined when it is no discovery path */
export function discovery (path: string, port: number): unknown {
  switch (path) {
    case '/api': return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${port}` }] }
    case '/api/v1': return resourceList('')
    case '/apis': return { kind: 'APIGroupList', apiVersion: 'v1', groups: [{ name: 'batch', versions: [BATCH], preferredVersion: BATCH }] }
    case '/apis/batch': return { kind: 'APIGroup', apiVersion: 'v1', name: 'batch', versions: [BATCH], preferredVersion: BATCH }
    case '/apis/batch/v1': return resourceList('batch')
    default: return undefined
  }
}
