/**
 * Placeholders of exec command templates: `{seed}`, `{index}`, `{start}`,
 * `{end}`, `{attempt}`, `{campaign}` and `{params.NAME}`, substituted inside
 * one argument at a time (there is never a shell, so a value cannot become a
 * second argument or a command). `{{` and `}}` stand for literal braces.
 * The node's config loader checks templates with this at load time, so a
 * typo fails when the node starts, not on the first shard.
 */

const SHARD_PLACEHOLDERS = ['seed', 'index', 'start', 'end', 'attempt', 'campaign'] as const
const PARAM_PREFIX = 'params.'
const PARAM_NAME = /^[A-Za-z0-9_-]+$/
const TOKEN = /\{\{|\}\}|\{([^{}]*)\}|[{}]/g

export type ShardValues = Record<(typeof SHARD_PLACEHOLDERS)[number], string>

type Piece = { literal: string } | { placeholder: string }

/** Splits an argument into literal text and placeholders; throws, saying what is wrong, for an unknown or malformed one. */
export function parseArgument (arg: string): Piece[] {
  const pieces: Piece[] = []
  let literal = ''
  let at = 0
  for (const match of arg.matchAll(TOKEN)) {
    literal += arg.slice(at, match.index)
    at = match.index + match[0].length
    if (match[0] === '{{') literal += '{'
    else if (match[0] === '}}') literal += '}'
    else if (match[1] === undefined) {
      throw new Error(`"${arg}" has a lone '${match[0]}'; write {{ or }} for a literal brace`)
    } else {
      checkPlaceholder(match[1], arg)
      if (literal !== '') pieces.push({ literal })
      literal = ''
      pieces.push({ placeholder: match[1] })
    }
  }
  literal += arg.slice(at)
  if (literal !== '') pieces.push({ literal })
  return pieces
}

function checkPlaceholder (name: string, arg: string): void {
  if ((SHARD_PLACEHOLDERS as readonly string[]).includes(name)) return
  if (name.startsWith(PARAM_PREFIX) && PARAM_NAME.test(name.slice(PARAM_PREFIX.length))) return
  const known = [...SHARD_PLACEHOLDERS.map((p) => `{${p}}`), '{params.NAME}'].join(', ')
  throw new Error(`"${arg}" uses the unknown placeholder {${name}}; known: ${known} (write {{ or }} for a literal brace)`)
}

/**
 * The argument with its placeholders filled in. A missing campaign parameter
 * throws; a parameter that is not a string goes in as JSON (numbers and
 * booleans as their usual text).
 */
export function substitute (arg: string, shard: ShardValues, params: Record<string, unknown>): string {
  return parseArgument(arg).map((piece) => {
    if ('literal' in piece) return piece.literal
    const name = piece.placeholder
    if (!name.startsWith(PARAM_PREFIX)) return shard[name as keyof ShardValues]
    const param = name.slice(PARAM_PREFIX.length)
    if (!Object.hasOwn(params, param)) throw new Error(`the template uses {${name}} but the campaign has no params.${param}`)
    const value = params[param]
    return typeof value === 'string' ? value : JSON.stringify(value) ?? String(value)
  }).join('')
}
