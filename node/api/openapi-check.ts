import { appendFile, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import type { MiddlewareHandler } from 'hono'
import type { Logger } from 'pino'
import { parse } from 'yaml'

export const OPENAPI_FILE = fileURLToPath(new URL('./openapi.yaml', import.meta.url))

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
/** The document's own fields, so that ajv (strict) accepts it as the root its schemas' `$ref`s point into. */
const DOCUMENT_FIELDS = ['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags', 'externalDocs']
const DOCUMENT_ID = 'openapi.yaml'
/** keywords whose ajv message does not say what was expected */
const SHOWN_PARAMS = new Set(['enum', 'const', 'additionalProperties'])

interface ResponseObject {
  description: string
  content?: Record<string, { schema?: unknown }>
}

export interface Operation {
  method: string
  /** the path template, e.g. `/v1/campaigns/{id}` */
  path: string
  /** by status code (or `4XX`, `default`), `$ref`s resolved */
  responses: Record<string, ResponseObject>
  /** the operation's own security, else the document's */
  security: unknown[]
}

/** One response the API sent. */
export interface ApiExchange {
  method: string
  /** the request path; a query string is ignored */
  path: string
  status: number
  /** the content-type header; null when the response has none */
  contentType: string | null
  /** the body text; read for JSON responses only (other media are documented as plain strings) */
  body?: string
}

interface Located extends Operation {
  pattern: RegExp
  /** JSON pointer of each response after `$ref`s are followed */
  pointers: Record<string, string>
}

/**
 * node/api/openapi.yaml, compiled: tells whether a response is one the
 * document describes (its status, media type, and for JSON the body against
 * the schema). Every schema in it is compiled strictly on load, so a key that
 * is not a JSON Schema keyword (a description split by an unquoted comma in a
 * flow mapping, say) fails loudly.
 */
export class OpenApiDocument {
  readonly #doc: Record<string, unknown>
  readonly #ajv: Ajv2020
  readonly #operations: Located[] = []
  readonly #validators = new Map<string, ValidateFunction>()

  private constructor (doc: Record<string, unknown>) {
    this.#doc = doc
    this.#ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true })
    this.#ajv.addVocabulary(DOCUMENT_FIELDS)
    this.#ajv.addSchema({ ...doc, $id: DOCUMENT_ID })
    const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>
    for (const [path, item] of Object.entries(paths)) {
      for (const method of METHODS) {
        const op = item[method] as { responses?: Record<string, unknown>, security?: unknown[] } | undefined
        if (op == null) continue
        const base = `/paths/${escapePointer(path)}/${method}`
        const responses: Record<string, ResponseObject> = {}
        const pointers: Record<string, string> = {}
        for (const status of Object.keys(op.responses ?? {})) {
          pointers[status] = this.#follow(`${base}/responses/${escapePointer(status)}`)
          responses[status] = this.#at(pointers[status]) as ResponseObject
        }
        this.#operations.push({
          method: method.toUpperCase(),
          path,
          responses,
          pointers,
          security: op.security ?? (doc.security as unknown[] | undefined) ?? [],
          pattern: new RegExp(`^${path.split(/\{[^}]+\}/).map(part => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^/]+')}$`)
        })
      }
    }
    // a literal path wins over a template that also matches it
    this.#operations.sort((a, b) => paramCount(a.path) - paramCount(b.path))
    for (const pointer of schemaPointers(doc)) this.#validator(pointer)
  }

  static async load (file = OPENAPI_FILE): Promise<OpenApiDocument> {
    return new OpenApiDocument(parse(await readFile(file, 'utf8')) as Record<string, unknown>)
  }

  operations (): Operation[] {
    return this.#operations.map(({ method, path, responses, security }) => ({ method, path, responses, security }))
  }

  /** What is wrong with the response, one sentence each; empty when the document describes it. */
  problems (ex: ApiExchange): string[] {
    const path = ex.path.split('?')[0]!
    const method = ex.method.toUpperCase()
    const said = `${method} ${path} answered ${ex.status}`
    const op = this.#operations.find(o => o.method === method && o.pattern.test(path))
    if (op == null) {
      // the token check and the unknown-route answer come before any route
      if (ex.status === 401 || ex.status === 404) return this.#body(said, '/components/schemas/Error', ex)
      return [`${said}, but openapi.yaml has no ${method} ${path}: document the operation`]
    }
    const status = [String(ex.status), `${String(ex.status)[0]}XX`, 'default'].find(s => op.pointers[s] != null)
    if (status == null) return [`${said}, a status openapi.yaml does not list for ${method} ${op.path}: document it, or make the server answer a documented one`]
    const content = op.responses[status]!.content
    const media = ex.contentType?.split(';')[0]!.trim().toLowerCase()
    if (content == null) return media == null ? [] : [`${said} with a ${media} body, but openapi.yaml documents none for ${status}`]
    if (media == null || content[media] == null) {
      return [`${said} with ${media ?? 'no content-type'}; openapi.yaml documents ${Object.keys(content).join(', ')} for ${status}`]
    }
    if (!isJson(media) || content[media].schema == null) return []
    return this.#body(said, `${op.pointers[status]}/content/${escapePointer(media)}/schema`, ex)
  }

  #body (said: string, pointer: string, ex: ApiExchange): string[] {
    if (!isJson(ex.contentType)) return []
    let value: unknown
    try {
      value = JSON.parse(ex.body ?? '')
    } catch {
      return [`${said} with a body that is not JSON although its content-type is ${ex.contentType}`]
    }
    const validate = this.#validator(pointer)
    if (validate(value)) return []
    return (validate.errors ?? []).map(e => {
      const allowed = SHOWN_PARAMS.has(e.keyword) ? ` ${JSON.stringify(e.params)}` : ''
      return `${said}: ${e.instancePath === '' ? 'the body' : e.instancePath} ${e.message ?? 'is invalid'}${allowed} (schema at openapi.yaml#${pointer})`
    })
  }

  #validator (pointer: string): ValidateFunction {
    let validate = this.#validators.get(pointer)
    if (validate == null) {
      try {
        validate = this.#ajv.compile({ $ref: `${DOCUMENT_ID}#${pointer}` })
      } catch (err) {
        throw new Error(`openapi.yaml#${pointer} is not a valid schema: ${(err as Error).message}`)
      }
      this.#validators.set(pointer, validate)
    }
    return validate
  }

  /** Follows `$ref`s (to components/responses, say) from `pointer`; the pointer it ends at. */
  #follow (pointer: string): string {
    for (let seen = 0; seen < 10; seen++) {
      const ref = (this.#at(pointer) as { $ref?: unknown } | undefined)?.$ref
      if (typeof ref !== 'string') return pointer
      if (!ref.startsWith('#/')) throw new Error(`openapi.yaml#${pointer}: only references inside the document are supported, not ${ref}`)
      pointer = ref.slice(1)
    }
    throw new Error(`openapi.yaml#${pointer}: a $ref loop`)
  }

  #at (pointer: string): unknown {
    let node: unknown = this.#doc
    for (const part of pointer.split('/').slice(1)) node = (node as Record<string, unknown> | undefined)?.[unescapePointer(part)]
    if (node == null) throw new Error(`openapi.yaml has nothing at #${pointer}`)
    return node
  }
}

/**
 * Middleware that checks every response against the document and appends one
 * JSON line per problem to `file`, never changing the response.
 */
export async function openApiCheck (file: string, log: Logger): Promise<MiddlewareHandler> {
  const doc = await OpenApiDocument.load()
  return async (c, next) => {
    await next()
    try {
      const contentType = c.res.headers.get('content-type')
      const body = isJson(contentType) ? await c.res.clone().text() : undefined
      const exchange = { method: c.req.method, path: c.req.path, status: c.res.status, contentType }
      const problems = doc.problems({ ...exchange, body })
      if (problems.length === 0) return
      log.warn({ ...exchange, problems }, 'response does not match openapi.yaml')
      await appendFile(file, problems.map(problem => JSON.stringify({ ...exchange, problem }) + '\n').join(''))
    } catch (err) {
      log.warn({ err: (err as Error).message, path: c.req.path }, 'could not check a response against openapi.yaml')
    }
  }
}

function isJson (contentType: string | null | undefined): boolean {
  return /^application\/(?:[\w.-]+\+)?json\b/i.test(contentType ?? '')
}

function paramCount (path: string): number {
  return path.split('{').length - 1
}

/** Every schema in the document, as JSON pointers: components, request bodies, parameters, responses. */
function schemaPointers (doc: Record<string, unknown>): string[] {
  const found: string[] = []
  const visit = (node: unknown, pointer: string): void => {
    if (node == null || typeof node !== 'object') return
    for (const [key, value] of Object.entries(node)) {
      const at = `${pointer}/${escapePointer(key)}`
      if (key === 'schema') found.push(at)
      else visit(value, at)
    }
  }
  visit(doc.paths, '/paths')
  const components = (doc.components ?? {}) as Record<string, Record<string, unknown>>
  for (const name of Object.keys(components.schemas ?? {})) found.push(`/components/schemas/${escapePointer(name)}`)
  for (const kind of ['responses', 'parameters', 'requestBodies'] as const) visit(components[kind], `/components/${kind}`)
  return found
}

function escapePointer (part: string): string {
  return part.replace(/~/g, '~0').replace(/\//g, '~1')
}

function unescapePointer (part: string): string {
  return part.replace(/~1/g, '/').replace(/~0/g, '~')
}
