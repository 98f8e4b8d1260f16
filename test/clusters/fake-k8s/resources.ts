/** The resources the fake serves, as discovery describes them. */
export type Resource = 'pods' | 'secrets' | 'namespaces' | 'jobs'

export interface ResourceInfo {
  group: '' | 'batch'
  kind: string
  singular: string
  namespaced: boolean
  shortNames?: string[]
  categories?: string[]
  verbs: string[]
  /** subresource → its verbs */
  subresources: Record<string, { kind: string, verbs: string[] }>
}

// only what the fake implements: no patch, and update (PUT) for Secrets alone
const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'watch']

export const RESOURCES: Record<Resource, ResourceInfo> = {
  pods: {
    group: '',
    kind: 'Pod',
    singular: 'pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    verbs: VERBS,
    subresources: { log: { kind: 'Pod', verbs: ['get'] }, eviction: { kind: 'Eviction', verbs: ['create'] }, status: { kind: 'Pod', verbs: ['get'] } }
  },
  secrets: { group: '', kind: 'Secret', singular: 'secret', namespaced: true, verbs: [...VERBS, 'update'], subresources: {} },
  namespaces: { group: '', kind: 'Namespace', singular: 'namespace', namespaced: false, shortNames: ['ns'], verbs: ['create', 'delete', 'get', 'list', 'watch'], subresources: {} },
  jobs: { group: 'batch', kind: 'Job', singular: 'job', namespaced: true, categories: ['all'], verbs: VERBS, subresources: { status: { kind: 'Job', verbs: ['get'] } } }
}

export const apiVersionOf = (resource: Resource): string => RESOURCES[resource].group === '' ? 'v1' : `${RESOURCES[resource].group}/v1`

export function isResource (name: string): name is Resource {
  return Object.hasOwn(RESOURCES, name)
}
