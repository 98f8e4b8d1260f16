import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { engineRate, loadPrices, nodeRate, parsePrices, PricesError } from '../../node/campaign/prices.ts'
import { tempDir } from '../helpers.ts'

const EXAMPLE = fileURLToPath(new URL('../../examples/prices.yaml', import.meta.url))

let scratch: { path: string, remove: () => Promise<void> }
beforeAll(async () => { scratch = await tempDir('zp-prices-') })
afterAll(async () => { await scratch.remove() })

const problem = (raw: unknown): string => {
  try {
    parsePrices(raw, 'p.yaml')
  } catch (err) {
    expect(err).toBeInstanceOf(PricesError)
    return (err as Error).message
  }
  throw new Error('expected the price table to be refused')
}

describe('price table', () => {
  it('needs only default prices; the currency is USD unless it says', () => {
    expect(parsePrices({ default: { coreHour: 0.04, gpuHour: 1.5 } })).toEqual({ currency: 'USD', default: { coreHour: 0.04, gpuHour: 1.5 }, bridges: {}, labels: {} })
  })

  it('refuses what it cannot use, naming the field', () => {
    expect(problem({})).toMatch(/^p\.yaml: invalid price table:\n {2}- default: required\n/)
    expect(problem({ default: { coreHour: 0.1 } })).toContain('- default.gpuHour: required')
    expect(problem({ default: { coreHour: '0.1', gpuHour: 1 } })).toContain('- default.coreHour: a price per hour: a number, 0 or more')
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, bridges: { k8s: { coreHour: -1 } } })).toContain('- bridges.k8s.coreHour: a price cannot be negative')
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, bridges: { aws: { coreHour: 1 } } })).toMatch(/- bridges: .*"aws"/)
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, bridges: { ray: {} } })).toContain('- bridges.ray: give coreHour, gpuHour or both')
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, labels: { spot: { coreHour: 0 } } })).toContain('- labels.spot: a node label as KEY=VALUE, e.g. "pool=spot"')
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, currency: 'US Dollar' })).toContain('- currency: a currency code such as USD or EUR')
    expect(problem({ default: { coreHour: 0.1, gpuHour: 1 }, cpuHour: 1 })).toMatch(/- \(top level\): .*"cpuHour"/)
    // and says what a table looks like
    expect(problem({})).toContain('see examples/prices.yaml')
  })

  it('prices a node by its first matching label, then as its bridge, then by default; a missing price falls back field by field', () => {
    const prices = parsePrices({
      default: { coreHour: 0.1, gpuHour: 2 },
      bridges: { slurm: { gpuHour: 1 } },
      labels: { 'pool=spot': { coreHour: 0.02 }, 'site=lab': { coreHour: 0, gpuHour: 0 } }
    })
    expect(nodeRate(prices, { site: 'lab', pool: 'spot' })).toEqual({ coreHour: 0.02, gpuHour: 2, source: 'labels."pool=spot"' })
    expect(nodeRate(prices, { site: 'lab' })).toEqual({ coreHour: 0, gpuHour: 0, source: 'labels."site=lab"' })
    expect(nodeRate(prices, { bridge: 'slurm', 'slurm.job': '42' })).toEqual({ coreHour: 0.1, gpuHour: 1, source: 'bridges.slurm' })
    expect(nodeRate(prices, { bridge: 'dask' })).toEqual({ coreHour: 0.1, gpuHour: 2, source: 'default' })
    expect(engineRate(prices, 'slurm')).toEqual({ coreHour: 0.1, gpuHour: 1, source: 'bridges.slurm' })
    expect(engineRate(prices, 'k8s')).toEqual({ coreHour: 0.1, gpuHour: 2, source: 'default' })
  })

  it('reads a YAML file, saying where it is not YAML and when it is missing', async () => {
    const bad = join(scratch.path, 'bad.yaml')
    await writeFile(bad, 'default: { coreHour: 1\n')
    await expect(loadPrices(bad)).rejects.toThrow(new RegExp(`^${bad}:\\d+:\\d+: not valid YAML or JSON`))
    await expect(loadPrices(join(scratch.path, 'none.yaml'))).rejects.toThrow(/^cannot read price table .*none\.yaml: ENOENT$/)
  })

  it('the example price table is valid and prices every engine', async () => {
    const copy = join(scratch.path, 'prices.yaml')
    await copyFile(EXAMPLE, copy)
    const prices = await loadPrices(copy)
    for (const engine of ['slurm', 'dask', 'ray', 'k8s'] as const) expect(engineRate(prices, engine).source).toBe(`bridges.${engine}`)
    expect(Object.keys(prices.labels).length).toBeGreaterThan(0)
  })
})
