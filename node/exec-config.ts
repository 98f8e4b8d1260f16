import { constants } from 'node:fs'
import { access, readFile } from 'node:fs/promises'
import { delimiter, isAbsolute, join } from 'node:path'
import { parse } from 'yaml'
import { z } from 'zod'
import { parseArgument } from '../actors/worker/runners/exec-template.ts'
import type { ExecTemplates } from '../actors/worker/runners/types.ts'
import { errorMessage, ok, unavailable, type Capabilities } from './probe/types.ts'

/**
 * A node's exec config: the only commands `exec` workloads may run on it.
 *
 *   commands:
 *     integrate:
 *       argv: ["python3", "/opt/sims/integrate.py", "--seed", "{seed}", "--from", "{start}", "--to", "{end}"]
 *       env: { OMP_NUM_THREADS: "1" }
 *       cwd: /tmp
 *
 * YAML or JSON. Placeholders are checked here, when the node starts, so a
 * typo fails then rather than on the first shard.
 */

const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
/** set by the exec runner for every shard */
const RUNNER_ENV = ['ZP_SHARD', 'ZP_PARAMS', 'ZP_SEED', 'ZP_INDEX', 'ZP_ATTEMPT', 'ZP_CAMPAIGN']

/** YAML reads `OMP_NUM_THREADS: 1` and `["--n", 5]` as numbers; they mean the text */
const Text = z.union([z.string(), z.number().transform(String)])

const ArgumentSchema = Text.superRefine((arg, ctx) => {
  try {
    parseArgument(arg)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: errorMessage(err) })
  }
})

const TemplateSchema = z.strictObject({
  argv: z.array(ArgumentSchema).min(1, 'needs at least the program to run')
    .superRefine((argv, ctx) => {
      const program = argv[0]
      // the program is fixed by the node's owner: a placeholder there would let a campaign choose what runs
      if (program !== undefined && (program === '' || parseArgument(program).some((piece) => 'placeholder' in piece))) {
        ctx.addIssue({ code: 'custom', path: [0], message: 'the program (argv[0]) must be a fixed, non-empty path or name, without placeholders' })
      }
    }),
  env: z.record(
    z.string().regex(ENV_NAME, 'environment variable names are letters, digits and _, not starting with a digit')
      .refine((name) => !RUNNER_ENV.includes(name), `is set by the runner for each shard (${RUNNER_ENV.join(', ')}); choose another name`),
    Text
  ).optional(),
  cwd: z.string().refine(isAbsolute, 'must be an absolute path').optional()
})

const ExecConfigSchema = z.strictObject({
  commands: z.record(
    z.string().regex(TEMPLATE_NAME, 'command names are 1-64 lower case letters, digits, - and _, starting with a letter or digit'),
    TemplateSchema
  )
})

/** An exec config that cannot be used as written; the message names the file and the field. */
export class ExecConfigError extends Error {
  override name = 'ExecConfigError'
}

/** The templates in `text`; throws an error naming `source` and the field for anything wrong. */
export function parseExecConfig (text: string, source: string): ExecTemplates {
  let raw: unknown
  try {
    raw = parse(text)
  } catch (err) {
    throw new ExecConfigError(`${source}: not valid YAML or JSON: ${errorMessage(err)}`)
  }
  const parsed = ExecConfigSchema.safeParse(raw ?? {})
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const message = issue.code === 'invalid_key' ? issue.issues[0]?.message ?? issue.message : issue.message
      return `${fieldPath(issue.path)}: ${message}`
    })
    throw new ExecConfigError(`${source}: invalid exec config:\n  ${problems.join('\n  ')}`)
  }
  return parsed.data.commands
}

export async function loadExecConfig (file: string): Promise<ExecTemplates> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ExecConfigError(`cannot read the exec config ${file}: ${errorMessage(err)}`)
  }
  return parseExecConfig(text, file)
}

/**
 * `exec.<name>` capabilities for the node to advertise (the coordinator
 * requires `exec.<name>` of exec campaigns): ok where the program can be
 * found, unavailable where it cannot, so no shard is sent to a node that
 * would fail to start it.
 */
export async function execCapabilities (templates: ExecTemplates, env: NodeJS.ProcessEnv = process.env): Promise<Capabilities> {
  const caps: Capabilities = {}
  for (const [name, template] of Object.entries(templates)) {
    const argv0 = template.argv[0] ?? ''
    const found = await findProgram(argv0, template.env?.PATH ?? env.PATH ?? '')
    caps[`exec.${name}`] = found !== undefined
      ? ok({ argv0 })
      : unavailable(`${argv0} is not an executable file${argv0.includes('/') ? '' : ' on PATH'}`)
  }
  return caps
}

async function findProgram (program: string, path: string): Promise<string | undefined> {
  const candidates = program.includes('/') ? [program] : path.split(delimiter).filter((dir) => dir !== '').map((dir) => join(dir, program))
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here; try the next PATH entry
    }
  }
  return undefined
}

/** `commands.integrate.argv[3]`, as people write it */
function fieldPath (path: ReadonlyArray<PropertyKey>): string {
  let text = ''
  for (const key of path) text += typeof key === 'number' ? `[${key}]` : `${text === '' ? '' : '.'}${String(key)}`
  return text === '' ? '(top level)' : text
}
