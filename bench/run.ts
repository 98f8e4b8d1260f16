import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeError } from '../actors/runtime/errors.ts'
import { machineInfo } from './machine.ts'
import { regenerateReadme, renderConsole, writeResult } from './report.ts'
import type { SuiteResult } from './suite.ts'
import { SUITES } from './suites/index.ts'

/**
 * `npm run bench [-- suite…]`: runs the named suites (all without names),
 * prints each table, writes bench/results/<suite>.json and regenerates
 * bench/results/README.md. Exits non-zero when a suite fails.
 */
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))

const names = process.argv.slice(2)
const unknown = names.filter(n => !SUITES.some(s => s.name === n))
if (unknown.length > 0) {
  process.stderr.write(`bench: no suite named ${unknown.map(n => `'${n}'`).join(', ')}; the suites are ${SUITES.map(s => s.name).join(', ')} (no names runs them all)\n`)
  process.exit(2)
}
const selected = names.length === 0 ? SUITES : SUITES.filter(s => names.includes(s.name))

// Ctrl-C stops the running suite through its signal, so its processes and temp dirs are still cleaned up
const interrupted = new AbortController()
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}: cleaning up, then exiting\n`)
    interrupted.abort(new Error(`interrupted by ${sig}`))
  })
}

// before any suite, the load is other people's work, which the figures will share the CPUs with
const loadBefore = oneMinuteLoad()
if (loadBefore > availableParallelism() / 2) {
  process.stderr.write(`bench: this machine is busy (1-minute load average ${loadBefore} on ${availableParallelism()} cores): expect noisy figures\n`)
}

await mkdir(RESULTS_DIR, { recursive: true })
const tmp = await mkdtemp(join(tmpdir(), 'zp-bench-'))
/** what went wrong, for the closing line */
const failures: string[] = []
try {
  for (const suite of selected) {
    if (interrupted.signal.aborted) break
    const progress = (line: string): void => { process.stderr.write(`[${suite.name}] ${line}\n`) }
    progress(`${suite.title}…`)
    const date = new Date().toISOString()
    const machine = machineInfo()
    const loadAtStart = oneMinuteLoad()
    const started = performance.now()
    const suiteTmp = join(tmp, suite.name)
    await mkdir(suiteTmp)
    try {
      const output = await suite.run({ signal: interrupted.signal, tmp: suiteTmp, progress })
      const result: SuiteResult = {
        suite: suite.name,
        title: suite.title,
        date,
        durationMs: Math.round(performance.now() - started),
        machine,
        load: { start: loadAtStart, end: oneMinuteLoad() },
        ...output
      }
      await writeResult(RESULTS_DIR, result)
      process.stdout.write(`\n${renderConsole(result)}\n\n`)
    } catch (err) {
      if (interrupted.signal.aborted) {
        progress('interrupted; its processes are stopped')
        break
      }
      failures.push(`suite '${suite.name}'`)
      process.stderr.write(`bench: suite '${suite.name}' failed: ${err instanceof Error ? (err.stack ?? err.message) : describeError(err)}\n`)
    }
  }
  try {
    await regenerateReadme(RESULTS_DIR, SUITES.map(s => s.name))
  } catch (err) {
    failures.push('the results README')
    process.stderr.write(`bench: could not regenerate bench/results/README.md from bench/results/*.json: ${describeError(err)}\n`)
  }
} finally {
  await rm(tmp, { recursive: true, force: true })
}

if (interrupted.signal.aborted) {
  process.exitCode = 130
} else if (failures.length > 0) {
  process.stderr.write(`bench: FAILED: ${failures.join(', ')} (see above); bench/results keeps the previous figures of a failed suite, if any\n`)
  process.exitCode = 1
} else {
  process.stderr.write(`bench: wrote ${selected.map(s => `bench/results/${s.name}.json`).join(', ')} and bench/results/README.md\n`)
}

function oneMinuteLoad (): number {
  return Math.round(loadavg()[0]! * 100) / 100
}
