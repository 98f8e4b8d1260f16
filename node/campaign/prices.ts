import { readFile } from 'node:fs/promises'
import { parseDocument } from 'yaml'
import { z } from 'zod'
import { ENGINES, LABEL_KEY, LABEL_VALUE, type Engine, type Labels } from '../../protocols/bridge/schema.ts'

/**
 * `zp submit --prices prices.yaml`: what a core-hour and a GPU-hour cost,
 * by default, on each bridge engine's capacity, and on the mesh's own nodes
 * by label (a lab machine may cost 0). Every number is in `currency`.
 */

const Price = z.number({ error: (issue) => issue.input === undefined ? 'required' : 'a price per hour: a number, 0 or more' }).nonnegative({ message: 'a price cannot be negative' }).finite()

const RateSchema = z.object({ coreHour: Price, gpuHour: Price }).strict()

/** bridges and labels: either price, the other one falls back to `default` */
const PartialRateSchema = z.object({ coreHour: Price.optional(), gpuHour: Price.optional() }).strict()
  .refine(r => r.coreHour != null || r.gpuHour != null, { message: 'give coreHour, gpuHour or both' })

const LABEL_SELECTOR = 'a node label as KEY=VALUE, e.g. "pool=spot"'
const LabelSelector = z.string().refine(s => {
  const eq = s.indexOf('=')
  return eq > 0 && LABEL_KEY.test(s.slice(0, eq)) && LABEL_VALUE.test(s.slice(eq + 1))
}, { message: LABEL_SELECTOR })

export const PricesSchema = z.object({
  currency: z.string().regex(/^[A-Za-z]{1,8}$/, { message: 'a currency code such as USD or EUR' }).default('USD'),
  default: RateSchema,
  bridges: z.object(Object.fromEntries(ENGINES.map(e => [e, PartialRateSchema.optional()])) as Record<Engine, z.ZodOptional<typeof PartialRateSchema>>).strict().default({}),
  /** the first entry (in file order) whose label a node carries prices it */
  labels: z.record(LabelSelector, PartialRateSchema, { error: (issue) => issue.code === 'invalid_key' ? LABEL_SELECTOR : undefined }).default({})
}).strict()
export type Prices = z.infer<typeof PricesSchema>
export type Rate = z.infer<typeof RateSchema>

/** Where a rate came from, for the report: `default`, `bridges.k8s`, `labels."pool=spot"`. */
export interface PricedRate extends Rate {
  source: string
}

/** A price table that cannot be used: the message names the file, the field and the fix. */
export class PricesError extends Error {
  override name = 'PricesError'
}

const SHAPE = 'a price table has currency (default USD), default: { coreHour, gpuHour }, bridges: { slurm|dask|ray|k8s: { coreHour, gpuHour } } and labels: { "KEY=VALUE": { coreHour, gpuHour } }; see examples/prices.yaml'

export function parsePrices (raw: unknown, label = 'prices'): Prices {
  const parsed = PricesSchema.safeParse(raw, {
    error: (issue) => issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined
  })
  if (parsed.success) return parsed.data
  const issues = parsed.error.issues.slice(0, 10).map(i => `  - ${i.path.length > 0 ? i.path.map(String).join('.') : '(top level)'}: ${i.message}`)
  throw new PricesError(`${label}: invalid price table:\n${issues.join('\n')}\n(${SHAPE})`)
}

export async function loadPrices (path: string): Promise<Prices> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new PricesError(`cannot read price table ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const where = e.linePos?.[0] != null ? `:${e.linePos[0].line}:${e.linePos[0].col}` : ''
    throw new PricesError(`${path}${where}: not valid YAML or JSON: ${e.message.split('\n')[0]}`)
  }
  return parsePrices(doc.toJS(), path)
}

/** A bridge engine's capacity: its own prices, each missing one from `default`. */
export function engineRate (prices: Prices, engine: Engine): PricedRate {
  const own = prices.bridges[engine]
  return own != null ? { ...prices.default, ...defined(own), source: `bridges.${engine}` } : { ...prices.default, source: 'default' }
}

/**
 * One of the mesh's own nodes: the first `labels` entry it carries; else, for
 * a bridged node (label bridge=ENGINE), that engine's prices; else `default`.
 */
export function nodeRate (prices: Prices, labels: Labels): PricedRate {
  for (const [selector, rate] of Object.entries(prices.labels)) {
    const eq = selector.indexOf('=')
    if (labels[selector.slice(0, eq)] === selector.slice(eq + 1)) return { ...prices.default, ...defined(rate), source: `labels."${selector}"` }
  }
  const engine = ENGINES.find(e => e === labels.bridge)
  if (engine != null && prices.bridges[engine] != null) return engineRate(prices, engine)
  return { ...prices.default, source: 'default' }
}

function defined (rate: { coreHour?: number | undefined, gpuHour?: number | undefined }): Partial<Rate> {
  return { ...(rate.coreHour != null ? { coreHour: rate.coreHour } : {}), ...(rate.gpuHour != null ? { gpuHour: rate.gpuHour } : {}) }
}
