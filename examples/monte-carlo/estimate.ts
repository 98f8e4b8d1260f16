/**
 * Prints the option price from the option-pricing campaign's results, with
 * its standard error and the Black–Scholes price for comparison:
 *
 *   npx zp results <id> | npx node examples/monte-carlo/estimate.ts
 *   npx node examples/monte-carlo/estimate.ts results.jsonl --campaign my-campaign.yaml
 *
 * The results carry no parameters, so they are read from the campaign file
 * (default: campaign.yaml next to this script).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parse } from 'yaml'
import { blackScholes, estimate, optionParams, type ShardRow } from './pricing.ts'

async function main (): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { campaign: { type: 'string', default: join(import.meta.dirname, 'campaign.yaml') } }
  })
  const [resultsFile] = positionals
  if (resultsFile === undefined && process.stdin.isTTY) {
    throw new Error('give the results: npx zp results <id> | npx node examples/monte-carlo/estimate.ts (or a JSONL file as the argument)')
  }
  const campaign = parse(await readFile(values.campaign, 'utf8')) as { params?: Record<string, unknown> } | null
  const params = optionParams(campaign?.params ?? {})
  const text = resultsFile === undefined ? await readStdin() : await readFile(resultsFile, 'utf8')
  const est = estimate(parseRows(text), params)
  const exact = blackScholes(params)
  const diff = est.price - exact
  const f = (x: number): string => x.toFixed(4)
  process.stdout.write([
    `European ${params.option}: spot ${params.spot}, strike ${params.strike}, rate ${params.rate}, volatility ${params.volatility}, maturity ${params.maturity}`,
    `paths          ${est.paths.toLocaleString('en-US')} in ${est.shards} shards`,
    `Monte Carlo    ${f(est.price)} ± ${f(est.standardError)} (standard error)`,
    `95% interval   ${f(est.price - 1.96 * est.standardError)} … ${f(est.price + 1.96 * est.standardError)}`,
    `Black–Scholes  ${f(exact)}`,
    `difference     ${diff >= 0 ? '+' : ''}${f(diff)} (${(100 * diff / exact).toFixed(2)}%, ${(diff / est.standardError).toFixed(2)} standard errors)`,
    ''
  ].join('\n'))
}

/** The JSONL export: one row per shard, each with `shard` in front. */
function parseRows (text: string): ShardRow[] {
  const rows: ShardRow[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    const row = JSON.parse(line) as Partial<ShardRow>
    if (typeof row.paths !== 'number' || typeof row.sumPayoff !== 'number' || typeof row.sumPayoffSq !== 'number') {
      throw new Error(`line ${i + 1} is not a row of price.mjs (paths, sumPayoff, sumPayoffSq): ${line.slice(0, 200)}`)
    }
    rows.push({ paths: row.paths, sumPayoff: row.sumPayoff, sumPayoffSq: row.sumPayoffSq })
  })
  if (rows.length === 0) throw new Error('no result rows; did the campaign finish? (npx zp status <id>)')
  return rows
}

async function readStdin (): Promise<string> {
  let text = ''
  process.stdin.setEncoding('utf8')
  for await (const chunk of process.stdin) text += chunk as string
  return text
}

main().catch((err: unknown) => {
  process.stderr.write(`estimate: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
