/**
 * Writes a worker node's exec config for examples/exec with this checkout's
 * absolute paths (a template must name the program exactly; the node does
 * not know where the examples live):
 *
 *   npx node examples/exec/config.ts [DIR]     writes DIR/exec-config.yaml (default: .)
 *   npx zp-node start --exec-config DIR/exec-config.yaml …
 *
 * The demo and tests call execExampleConfig(dir) for the same file.
 */
import { accessSync, constants } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { ExecTemplates } from '../../actors/worker/runners/types.ts'

/** the template name campaign.yaml asks for */
export const EXEC_COMMAND = 'rlc-tolerance'
export const EXEC_PROGRAM = join(import.meta.dirname, 'rlc_tolerance.py')

/**
 * The system interpreter where there is one: an absolute path pins what runs,
 * and skips version-manager shims on PATH, which can cost more start-up time
 * than a shard computes.
 */
function defaultPython (): string {
  try {
    accessSync('/usr/bin/python3', constants.X_OK)
    return '/usr/bin/python3'
  } catch {
    return 'python3'
  }
}

export function execExampleTemplates (python = defaultPython()): ExecTemplates {
  return { [EXEC_COMMAND]: { argv: [python, EXEC_PROGRAM, '--seed', '{seed}', '--start', '{start}', '--end', '{end}'] } }
}

/** Writes `exec-config.yaml` into `dir` and returns its path. */
export async function execExampleConfig (dir: string, opts: { python?: string } = {}): Promise<string> {
  await mkdir(dir, { recursive: true })
  const file = join(resolve(dir), 'exec-config.yaml')
  // JSON is YAML, and quotes any path exactly
  const text = `# written by examples/exec/config.ts for this checkout\n${JSON.stringify({ commands: execExampleTemplates(opts.python) }, null, 2)}\n`
  await writeFile(file, text)
  return file
}

if (import.meta.main) {
  const file = await execExampleConfig(process.argv[2] ?? '.')
  process.stdout.write(`wrote ${file}\nstart each worker node with: npx zp-node start --exec-config ${file} (or join … --exec-config ${file})\n`)
}
