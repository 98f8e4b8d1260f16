import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { loadCampaignFile } from '../../node/campaign/load.ts'
import { expandTemplate, parseSets, TemplateError } from '../../node/campaign/template.ts'
import { runCli } from '../process/harness.ts'

const example = (path: string): string => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url))

const TEMPLATE = {
  parameters: {
    paths: { type: 'integer', default: 1000, min: 100, max: 100000 },
    kind: { type: 'string', default: 'call', enum: ['call', 'put'] },
    exact: { type: 'boolean', default: false },
    sigma: { type: 'number' }
  },
  description: 'a test template',
  name: 'mc-${kind}-${paths}',
  shards: { iterations: { total: '${paths}', perShard: 100 } },
  params: { option: '${kind}', exact: '${exact}', volatility: '${sigma}', list: ['${paths}', 'x'] }
}

describe('campaign templates', () => {
  it('puts typed values where a value is one reference, and text where it is part of a string', () => {
    const { campaign, values } = expandTemplate(TEMPLATE, { sigma: '0.25', paths: '2000' }, 't.yaml')
    expect(values).toEqual({ paths: 2000, kind: 'call', exact: false, sigma: 0.25 })
    expect(campaign).toEqual({
      name: 'mc-call-2000',
      shards: { iterations: { total: 2000, perShard: 100 } },
      params: { option: 'call', exact: false, volatility: 0.25, list: [2000, 'x'] }
    })
    // typed values (a parameters file, the REST API) are checked the same way
    expect(expandTemplate(TEMPLATE, { sigma: 1, exact: true, kind: 'put' }, 't.yaml').campaign).toMatchObject({ name: 'mc-put-1000', params: { exact: true } })
  })

  it('refuses a bad value naming the parameter and what it takes', () => {
    const fails = (given: Record<string, string | number>): string => {
      try {
        expandTemplate(TEMPLATE, given, 't.yaml')
      } catch (err) {
        expect(err).toBeInstanceOf(TemplateError)
        return (err as Error).message
      }
      throw new Error('expected a refusal')
    }
    expect(fails({ sigma: 1, paths: '50' })).toBe('t.yaml: parameter paths = "50" is below the allowed range; it takes an integer at least 100 and at most 100000 (default 1000)')
    expect(fails({ sigma: 1, paths: '2.5' })).toMatch(/parameter paths = "2\.5" is not an integer/)
    expect(fails({ sigma: 1, kind: 'swap' })).toMatch(/parameter kind = "swap" is not an allowed value; it takes a string one of "call", "put"/)
    expect(fails({ sigma: 'high' })).toMatch(/parameter sigma = "high" is not a number/)
    expect(fails({ sigma: 1, exact: 'yes' })).toMatch(/parameter exact = "yes" is not true or false/)
    expect(fails({})).toMatch(/parameter sigma has no default; give it with --set sigma=…/)
    expect(fails({ sigma: 1, pahts: 5 })).toBe('t.yaml: no parameter pahts; the template declares paths, kind, exact, sigma')
  })

  it('refuses a reference to an undeclared parameter, a bad declaration, and values for a plain campaign', () => {
    expect(() => expandTemplate({ ...TEMPLATE, name: '${nmae}' }, { sigma: 1 }, 't.yaml')).toThrow(/t\.yaml: name refers to \$\{nmae\}, which is not a declared parameter/)
    expect(() => expandTemplate({ parameters: { n: { type: 'int' } } }, {}, 't.yaml')).toThrow(/t\.yaml: parameters\.n\.type: /)
    expect(() => expandTemplate({ name: 'plain' }, { n: 1 }, 'plain.yaml')).toThrow(/parameters were given \(n\) but this campaign file declares none/)
    expect(expandTemplate({ name: 'plain' }, {}, 'plain.yaml')).toEqual({ campaign: { name: 'plain' } })
    expect(parseSets(['a=1', 'b=x=y', 'c='])).toEqual({ a: '1', b: 'x=y', c: '' })
    expect(() => parseSets(['nope'])).toThrow(/--set nope: expected NAME=VALUE/)
  })

  it('the built-in templates, with their defaults, are the example campaigns they come from', async () => {
    for (const [template, plain] of [['monte-carlo/template.yaml', 'monte-carlo/campaign.yaml'], ['sweep/template.yaml', 'sweep/campaign.yaml']] as const) {
      const fromTemplate = await loadCampaignFile(example(template))
      const original = await loadCampaignFile(example(plain))
      const { name: _a, ...t } = fromTemplate.spec
      const { name: _b, ...o } = original.spec
      expect(t, template).toEqual(o)
    }
    const set = await loadCampaignFile(example('monte-carlo/template.yaml'), { params: { paths: '4000000', option: 'put' } })
    expect(set.spec).toMatchObject({ name: 'option-pricing-put-4000000', shards: { iterations: { total: 4000000 } }, params: { option: 'put' } })
    expect(parse(await readFile(example('monte-carlo/template.yaml'), 'utf8'))).toHaveProperty('description')
  })

  it('zp templates list names each built-in with its parameters; zp submit refuses a template name that does not exist', async () => {
    const list = await runCli('zp', ['templates', 'list', '--json'])
    expect(list.code, list.stderr).toBe(0)
    const entries = JSON.parse(list.stdout) as Array<{ template: string, parameters: Record<string, unknown> }>
    expect(entries.map(e => e.template)).toEqual(['monte-carlo', 'sweep'])
    expect(Object.keys(entries[0]!.parameters)).toContain('paths')
    const missing = await runCli('zp', ['submit', '--template', 'nope', '--data-dir', '/nonexistent'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/no built-in template 'nope'; there are monte-carlo, sweep/)
  })
})
