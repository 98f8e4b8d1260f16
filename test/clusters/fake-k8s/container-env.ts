import type { Store } from './store.ts'
import { SUBSCRIPTED_FIELD } from './validate-pod.ts'
import type { Container, Pod, Secret } from './wire.ts'

/**
 * The kubelet's makeEnvironmentVariables: service variables, then envFrom,
 * then env in order, each `value` expanded against the variables defined
 * before it; a Secret or key that is not there stops the container with
 * CreateContainerConfigError unless the reference is optional.
 */
export const NODE_NAME = 'fake-node'
export const NODE_IP = '127.0.0.1'

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface EnvContext {
  store: Store
  /** the API server's port, for KUBERNETES_SERVICE_* */
  apiPort: number
}

export function containerEnv (pod: Pod, container: Container, ctx: EnvContext): Record<string, string> {
  const namespace = pod.metadata.namespace ?? 'default'
  const env: Record<string, string> = {
    KUBERNETES_SERVICE_HOST: NODE_IP,
    KUBERNETES_SERVICE_PORT: String(ctx.apiPort)
  }
  const secret = (name: string, optional: boolean | undefined): Secret | undefined => {
    const found = ctx.store.get<Secret>('secrets', namespace, name)
    if (found === undefined && optional !== true) throw new ConfigError(`secret "${name}" not found`)
    return found
  }
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef !== undefined) {
      // the fake serves no ConfigMaps: a reference finds none, as it would on a cluster without that ConfigMap
      if (from.configMapRef.optional !== true) throw new ConfigError(`configmap "${from.configMapRef.name}" not found`)
      continue
    }
    const s = from.secretRef === undefined ? undefined : secret(from.secretRef.name, from.secretRef.optional)
    for (const [k, v] of Object.entries(s?.data ?? {})) {
      const name = (from.prefix ?? '') + k
      // names that are not valid variable names are skipped (the kubelet records an event)
      if (/^[\x20-\x3c\x3e-\x7e]+$/.test(name)) env[name] = Buffer.from(v, 'base64').toString('utf8')
    }
  }
  for (const e of container.env ?? []) {
    const from = e.valueFrom
    if (from === undefined) {
      env[e.name] = expand(e.value ?? '', env)
    } else if (from.fieldRef !== undefined) {
      env[e.name] = fieldValue(pod, from.fieldRef.fieldPath)
    } else if (from.secretKeyRef !== undefined) {
      const ref = from.secretKeyRef
      const s = secret(ref.name, ref.optional)
      const value = s?.data?.[ref.key]
      if (value !== undefined) env[e.name] = Buffer.from(value, 'base64').toString('utf8')
      else if (s !== undefined && ref.optional !== true) throw new ConfigError(`couldn't find key ${ref.key} in Secret ${namespace}/${ref.name}`)
    } else if (from.configMapKeyRef !== undefined && from.configMapKeyRef.optional !== true) {
      throw new ConfigError(`configmap "${from.configMapKeyRef.name}" not found`)
    }
  }
  return env
}

/** the downward API: what a fieldRef reads from the pod */
export function fieldValue (pod: Pod, path: string): string {
  const sub = SUBSCRIPTED_FIELD.exec(path)
  if (sub !== null) return (sub[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[sub[2]!] ?? ''
  switch (path) {
    case 'metadata.name': return pod.metadata.name ?? ''
    case 'metadata.namespace': return pod.metadata.namespace ?? ''
    case 'metadata.uid': return pod.metadata.uid ?? ''
    case 'spec.nodeName': return pod.spec.nodeName ?? ''
    case 'spec.serviceAccountName': return String((pod.spec as { serviceAccountName?: string }).serviceAccountName ?? '')
    default: return NODE_IP // status.hostIP(s), status.podIP(s): the node and every pod are 127.0.0.1 here
  }
}

/**
 * Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion):
 * $(NAME) becomes the variable's value when it is defined and stays as
 * written when it is not; $$ is a literal $; any other $ is kept.
 */
export function expand (input: string, vars: Record<string, string>): string {
  let out = ''
  let checkpoint = 0
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue
    out += input.slice(checkpoint, cursor)
    const next = input[cursor + 1]
    let advance = 1
    if (next === '$') {
      out += '$'
    } else if (next === '(') {
      const close = input.indexOf(')', cursor + 2)
      if (close < 0) {
        out += '$('
      } else {
        const name = input.slice(cursor + 2, close)
        out += Object.hasOwn(vars, name) ? vars[name] : `$(${name})`
        advance = close - cursor
      }
    } else {
      out += '$' + next
    }
    cursor += advance
    checkpoint = cursor + 1
  }
  return out + input.slice(checkpoint)
}
