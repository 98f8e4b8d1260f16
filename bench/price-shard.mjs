// The Monte Carlo example's shard code outside the mesh, for the bridge suite's native Dask tasks
// (bench/dask-price.py): one `{ shard, params }` JSON line on stdin → the row examples/monte-carlo/price.mjs
// returns for it, one JSON line on stdout. Exits when stdin closes, so one process serves one shard or many.
import { createInterface } from 'node:readline'
import { run } from '../examples/monte-carlo/price.mjs'

const signal = new AbortController().signal
for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue
  const { shard, params } = JSON.parse(line)
  const row = await run({ kind: 'iterations', ...shard }, { params, signal, progress: () => {} })
  process.stdout.write(`${JSON.stringify(row)}\n`)
}
