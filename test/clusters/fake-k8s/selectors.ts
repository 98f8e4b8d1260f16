import { badRequest } from './errors.ts'
import type { Job, KObject, Pod, Secret, Namespace } from './wire.ts'

/**
 * `labelSelector` and `fieldSelector` as list and watch take them. Label
 * requirements: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k, k>n, k<n,
 * comma-joined. Field requirements: f=v, f==v, f!=v on the fields each
 * resource lets a client select by (others are refused as the server does).
 */
export type Matcher = (obj: KObject) => boolean

type Requirement = (labels: Record<string, string>) => boolean

const WORD = /^[^\s,()=!<>]+/

export function parseLabelSelector (text: string): Matcher {
  const reqs: Requirement[] = []
  let rest = text.trim()
  const fail = (why: string): never => { throw badRequest(`unable to parse requirement: ${why} in label selector ${JSON.stringify(text)}`) }
  const word = (): string => {
    rest = rest.trimStart()
    const m = WORD.exec(rest)
    if (m === null) return fail(`expected a key or value at ${JSON.stringify(rest)}`)
    rest = rest.slice(m[0].length)
    return m[0]
  }
  const eat = (token: string): boolean => {
    rest = rest.trimStart()
    if (!rest.startsWith(token)) return false
    rest = rest.slice(token.length)
    return true
  }
  const set = (): Set<string> => {
    if (!eat('(')) fail('expected "(" after in/notin')
    const values = new Set<string>()
    if (eat(')')) return values
    do { values.add(word()) } while (eat(','))
    if (!eat(')')) fail('expected ")"')
    return values
  }
  while (rest.trim() !== '') {
    if (eat('!')) {
      const key = word()
      reqs.push(l => !(key in l))
    } else {
      const key = word()
      rest = rest.trimStart()
      if (eat('==') || eat('=')) {
        const v = valueOrEmpty()
        reqs.push(l => l[key] === v)
      } else if (eat('!=')) {
        const v = valueOrEmpty()
        reqs.push(l => l[key] !== v)
      } else if (/^in\s*\(/.test(rest)) {
        rest = rest.slice(2)
        const values = set()
        reqs.push(l => key in l && values.has(l[key]!))
      } else if (/^notin\s*\(/.test(rest)) {
        rest = rest.slice(5)
        const values = set()
        reqs.push(l => !(key in l) || !values.has(l[key]!))
      } else if (rest.startsWith('>') || rest.startsWith('<')) {
        const gt = eat('>') || !eat('<')
        const n = Number(word())
        if (!Number.isInteger(n)) fail('gt and lt take an integer')
        reqs.push(l => key in l && /^-?\d+$/.test(l[key]!) && (gt ? Number(l[key]) > n : Number(l[key]) < n))
      } else {
        reqs.push(l => key in l)
      }
    }
    if (rest.trim() !== '' && !eat(',')) fail(`expected "," at ${JSON.stringify(rest.trim())}`)
  }
  return obj => { const labels = obj.metadata.labels ?? {}; return reqs.every(r => r(labels)) }

  function valueOrEmpty (): string {
    rest = rest.trimStart()
    return rest === '' || rest.startsWith(',') ? '' : word()
  }
}

/** the fields each resource can be selected by, and how to read them */
const FIELDS: Record<string, Record<string, (obj: KObject) => string>> = {
  pods: {
    'spec.nodeName': o => (o as Pod).spec.nodeName ?? '',
    'spec.restartPolicy': o => (o as Pod).spec.restartPolicy ?? '',
    'status.phase': o => (o as Pod).status.phase,
    'status.podIP': o => (o as Pod).status.podIP ?? ''
  },
  jobs: { 'status.successful': o => String((o as Job).status.succeeded ?? 0) },
  secrets: { type: o => (o as Secret).type ?? '' },
  namespaces: { 'status.phase': o => (o as Namespace).status?.phase ?? '' }
}

export function parseFieldSelector (resource: string, text: string): Matcher {
  const tests: Matcher[] = []
  for (const part of splitUnescaped(text, ',')) {
    if (part.trim() === '') continue
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part)
    if (m === null) throw badRequest(`invalid selector: '${text}'; can't understand '${part}'`)
    const [, field = '', op, raw = ''] = m
    const value = raw.replace(/\\(.)/g, '$1')
    const read = field === 'metadata.name' ? (o: KObject) => o.metadata.name ?? ''
      : field === 'metadata.namespace' ? (o: KObject) => o.metadata.namespace ?? ''
        : FIELDS[resource]?.[field]
    if (read === undefined) throw badRequest(`field label not supported: ${field}`)
    tests.push(op === '!=' ? o => read(o) !== value : o => read(o) === value)
  }
  return obj => tests.every(t => t(obj))
}

function splitUnescaped (text: string, sep: string): string[] {
  const parts: string[] = []
  let current = ''
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\' && i + 1 < text.length) {
      current += text.slice(i, i + 2)
      i++
    } else if (text[i] === sep) {
      parts.push(current)
      current = ''
    } else {
      current += text[i]
    }
  }
  parts.push(current)
  return parts
}

/** both selectors of a list or watch request; absent ones match everything */
export function selectorsFrom (resource: string, query: URLSearchParams): Matcher {
  const label = query.get('labelSelector')
  const field = query.get('fieldSelector')
  const byLabel = label === null || label.trim() === '' ? undefined : parseLabelSelector(label)
  const byField = field === null || field.trim() === '' ? undefined : parseFieldSelector(resource, field)
  return obj => (byLabel?.(obj) ?? true) && (byField?.(obj) ?? true)
}
