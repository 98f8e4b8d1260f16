import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { parse } from 'yaml'
import { isTemplate, parseSets, ParametersSchema, type ParamValue } from '../campaign/template.ts'
import { UsageError } from './errors.ts'

// Campaign templates from the command line: the built-in presets (examples/NAME/template.yaml), `zp templates list|show`,
// and the values `zp submit --set / --params-file` sends. The node expands a template (node/campaign/template.ts).

/** the presets that come with zp-mesh: examples/NAME/template.yaml, beside the files they use */
export const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url))

async function builtIns (): Promise<string[]> {
  const dirs = await readdir(EXAMPLES, { withFileTypes: true }).catch(() => [])
  const names = await Promise.all(dirs.filter(d => d.isDirectory()).map(async d => await stat(join(EXAMPLES, d.name, 'template.yaml')).then(() => d.name, () => null)))
  return names.filter(n => n != null).sort()
}

async function builtInFile (name: string): Promise<string> {
  const names = await builtIns()
  if (!names.includes(name)) throw new UsageError(`no built-in template '${name}'; there are ${names.join(', ') || 'none'} (zp templates list), or give a template file: zp submit FILE --set …`)
  return join(EXAMPLES, name, 'template.yaml')
}

/** The campaign file `zp submit` sends: the one given, or a built-in template's. */
export async function campaignFileOf (file: string | undefined, template: string | undefined): Promise<string> {
  if (file != null && template != null) throw new UsageError('give a campaign file or --template NAME, not both')
  if (template != null) return await builtInFile(template)
  if (file == null) throw new UsageError('zp submit needs a campaign file (zp submit campaign.yaml), or --template NAME (zp templates list)')
  return file
}

/** `--params-file` (typed values), then `--set` (text) over it. */
export async function templateValues (flags: Record<string, unknown>): Promise<Record<string, ParamValue>> {
  let values: Record<string, ParamValue> = {}
  if (typeof flags.paramsFile === 'string') {
    let doc: unknown
    try {
      doc = parse(await readFile(flags.paramsFile, 'utf8'))
    } catch (err) {
      throw new UsageError(`--params-file ${flags.paramsFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message.split('\n')[0]}`)
    }
    const ok = doc != null && typeof doc === 'object' && !Array.isArray(doc) && Object.values(doc).every(v => ['string', 'number', 'boolean'].includes(typeof v))
    if (!ok) throw new UsageError(`--params-file ${flags.paramsFile}: expected a map of parameter names to values (paths: 200000)`)
    values = doc as Record<string, ParamValue>
  }
  // a bad --set is a TemplateError: a usage error (exit 2) by name, like the node's answer to a bad value
  return { ...values, ...parseSets((flags.set as string[] | undefined) ?? []) }
}

async function describeTemplate (file: string): Promise<{ name: string, description: string, parameters: Record<string, unknown> }> {
  const doc = parse(await readFile(file, 'utf8')) as Record<string, unknown>
  const params = isTemplate(doc) ? ParametersSchema.safeParse(doc.parameters) : undefined
  return {
    name: typeof doc?.name === 'string' ? doc.name : '',
    description: typeof doc?.description === 'string' ? doc.description : '',
    parameters: params?.success === true ? params.data : {}
  }
}

export function templatesCommands (program: Command): void {
  const t = program.command('templates').description('campaign templates: campaign files with declared parameters (zp submit --template NAME --set k=v)')
  t.command('list').description('the built-in templates').option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const list = await Promise.all((await builtIns()).map(async name => ({ template: name, ...await describeTemplate(await builtInFile(name)) })))
      if (flags.json === true) process.stdout.write(JSON.stringify(list, null, 2) + '\n')
      else for (const x of list) process.stdout.write(`${x.template.padEnd(24)} ${Object.keys(x.parameters).join(', ').padEnd(36)} ${x.description}\n`)
    })
  t.command('show').argument('<name>', 'a built-in template').description('print a built-in template (save it, change it, submit the file)')
    .action(async (name: string) => { process.stdout.write(await readFile(await builtInFile(name), 'utf8')) })
}
