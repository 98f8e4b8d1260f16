/**
 * Shard results and checkpoints leave the worker as msgpack and end up in
 * JSONL/CSV exports, so they must be plain JSON data. This check runs where
 * the value is made (inside the module's worker thread, before postMessage),
 * and names the first offending place so the author can fix it.
 * No dependencies: the worker thread imports it and starts faster without them.
 */

/** Deeper than this is almost certainly a bug (or a cycle through fresh objects). */
const MAX_DEPTH = 64

/** Why `value` is not plain JSON data, with its path under `root`; undefined when it is. */
export function plainDataProblem (value: unknown, root: string): string | undefined {
  return problemAt(value, root, new Set(), 0)
}

function problemAt (value: unknown, path: string, ancestors: Set<object>, depth: number): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${String(value)}, which JSON cannot hold (use null or a string)`
    case 'undefined':
      return `${path} is undefined (use null, or leave the key out)`
    case 'bigint':
      return `${path} is a BigInt (convert it with Number() or String())`
    case 'function':
      return `${path} is a function`
    case 'symbol':
      return `${path} is a symbol`
  }
  if (value === null) return undefined
  const obj = value as object
  if (ancestors.has(obj)) return `${path} refers back to one of its own parents (a cycle)`
  if (depth >= MAX_DEPTH) return `${path} is nested more than ${MAX_DEPTH} levels deep`
  ancestors.add(obj)
  try {
    if (Array.isArray(obj)) {
      for (let i = 0; i < obj.length; i++) {
        const problem = problemAt(obj[i], `${path}[${i}]`, ancestors, depth + 1)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    const proto = Object.getPrototypeOf(obj) as object | null
    if (proto !== Object.prototype && proto !== null) {
      const kind = ArrayBuffer.isView(obj) ? ' (use Array.from() for typed arrays)' : ''
      return `${path} is a ${obj.constructor?.name ?? 'non-plain'} object, not a plain object or array${kind}`
    }
    for (const key of Object.keys(obj)) {
      const problem = problemAt((obj as Record<string, unknown>)[key], `${path}.${key}`, ancestors, depth + 1)
      if (problem !== undefined) return problem
    }
    return undefined
  } finally {
    ancestors.delete(obj)
  }
}

/** What a module's run() returned, as result rows: an array is the rows, undefined none, anything else one row. */
export function asRows (returned: unknown): unknown[] {
  if (Array.isArray(returned)) return returned
  return returned === undefined ? [] : [returned]
}
