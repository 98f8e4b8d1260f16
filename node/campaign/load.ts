import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { basename, dirname, extname, resolve } from 'node:path'
import { promisify } from 'node:util'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import type { BlobRef, CampaignSpec, DataSet, Requirements, Sharding, Workload } from '../../protocols/campaign/spec.ts'
import { CampaignFileSchema, type CampaignFile } from './file-schema.ts'
import { DataSetError, scanDataSet, type DataSetIndex } from './dataset.ts'
import { locate } from './paths.ts'
import { expandTemplate, TemplateError, type ParamValues } from './template.ts'

const exec = promisify(execFile)

/** A campaign file that cannot be run as written: the message names the file, the field and the fix. */
export class CampaignFileError extends Error {
  override name = 'CampaignFileError'
}

/** A file the campaign names, to be read into the blob store at submit. */
export interface CampaignAsset {
  /** where it is named in the spec, e.g. workload.model */
  field: string
  /** its real path (symlinks resolved) */
  path: string
  /** its file name as the campaign gives it: the name it is stored under */
  name: string
  /** already in the store (a data set copied while it was scanned) */
  stored?: BlobRef
}

/** A blob store to copy data sets into while they are scanned (the node's; the CLI passes none). */
export interface IngestStore {
  createWriter: (opts: { name: string }) => Promise<{
    write: (chunks: readonly Uint8Array[]) => Promise<void>
    finish: () => Promise<string>
    commit: () => Promise<unknown>
    discard: () => Promise<void>
    readonly bytes: number
  }>
}

/**
 * A validated campaign whose files are still paths. `resolve` turns it into
 * the CampaignSpec the mesh runs, given a way to store each file by hash.
 */
export interface LoadedCampaign {
  spec: CampaignFile
  baseDir: string
  assets: CampaignAsset[]
  sharding: Sharding
  requires: Requirements
  /** rows workloads: the data set's shard boundaries */
  data?: DataSetIndex
  reference?: DataSetIndex
  source: CampaignSpec['source']
}

export interface LoadOptions {
  signal?: AbortSignal
  store?: IngestStore
  /** folders besides the campaign's own that its files may be in (zp-node --data-root) */
  dataRoots?: readonly string[]
  /** values of a template's parameters (zp submit --set, or the REST body's params) */
  params?: ParamValues
}

const ARM_FLAGS = new Set(['neon', 'asimd', 'sve', 'sve2', 'sme'])

/**
 * The most shards a campaign may have: the coordinator keeps a bit per shard
 * (125 MB at this count) and addresses shards with 32-bit operations.
 */
export const MAX_SHARDS = 1_000_000_000

export async function loadCampaignFile (path: string, opts: LoadOptions = {}): Promise<LoadedCampaign> {
  const file = resolve(path)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new CampaignFileError(`cannot read campaign file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const where = e.linePos?.[0] != null ? `:${e.linePos[0].line}:${e.linePos[0].col}` : ''
    throw new CampaignFileError(`${path}${where}: not valid YAML or JSON: ${e.message.split('\n')[0]}`)
  }
  return await loadCampaignObject(doc.toJS(), dirname(file), { file, ...await gitSource(file) }, basename(path), opts)
}

/** The same checks for a spec that arrives as an object (the REST API). */
export async function loadCampaignObject (template: unknown, baseDir: string, source: CampaignSpec['source'], label = 'campaign', opts: LoadOptions = {}): Promise<LoadedCampaign> {
  let raw: unknown
  try {
    raw = expandTemplate(template, opts.params ?? {}, label).campaign
  } catch (err) {
    if (err instanceof TemplateError) throw new CampaignFileError(err.message)
    throw err
  }
  const parsed = CampaignFileSchema.safeParse(raw, {
    error: (issue) => issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined
  })
  if (!parsed.success) throw new CampaignFileError(`${label}: invalid campaign:\n${listIssues(parsed.error)}`)
  const spec = parsed.data
  const fail = (field: string, message: string): never => { throw new CampaignFileError(`${label}: ${field}: ${message}`) }
  const assets: CampaignAsset[] = []
  const asset = async (field: string, p: string): Promise<void> => {
    const found = await locate(p, { base: baseDir, dataRoots: opts.dataRoots })
    if ('outside' in found) fail(field, found.outside)
    else if ('missing' in found) fail(field, `file ${p} not found (looked for ${found.missing})`)
    else if (!(await stat(found.path)).isFile()) fail(field, `${p} is not a file`)
    else assets.push({ field, path: found.path, name: basename(p) })
  }
  /** scans a data set, copying it into the store on the way when there is one */
  const scan = async (field: string, format: 'csv' | 'jsonl'): Promise<DataSetIndex> => {
    const perShard = spec.shards.rows!.perShard
    const { path, name } = assets.find(a => a.field === field)!
    const writer = await opts.store?.createWriter({ name })
    try {
      const index = await scanDataSet(path, format, perShard, opts.signal, writer)
      if (writer != null) {
        const hash = await writer.finish()
        await writer.commit()
        assets.find(a => a.field === field)!.stored = { hash, size: writer.bytes, name }
      }
      return index
    } catch (err) {
      if (err instanceof DataSetError) throw new CampaignFileError(`${label}: ${field}: ${err.message}`)
      throw err
    } finally {
      await writer?.discard()
    }
  }

  const w = spec.workload
  const shardKind = spec.shards.rows != null ? 'rows' : spec.shards.iterations != null ? 'iterations' : 'grid'
  if (w.kind === 'onnx' && shardKind !== 'rows') fail('shards', 'onnx workloads are sharded by rows of their data set: use shards.rows.perShard')
  if (w.kind !== 'onnx' && shardKind === 'rows') fail('shards.rows', `only onnx workloads have a data set to shard by rows; use shards.iterations or shards.grid for ${w.kind} workloads`)

  let data: DataSetIndex | undefined
  let reference: DataSetIndex | undefined
  if (w.kind === 'module') {
    await asset('workload.module', w.module)
    if (!['.mjs', '.js'].includes(extname(w.module))) fail('workload.module', `${w.module} must be an ES module file ending in .mjs or .js`)
  } else if (w.kind === 'onnx') {
    // every file is checked before any is read: a refused submit stores nothing
    await asset('workload.model', w.model)
    await asset('workload.data', w.data)
    const format = w.format ?? formatOf(w.data) ?? fail('workload.format', `cannot tell the format of ${w.data} from its extension; set format: csv or jsonl`)
    const refData = w.reference?.data
    if (refData != null) await asset('workload.reference.data', refData)
    const refFormat = refData != null ? formatOf(refData) ?? fail('workload.reference.data', `cannot tell the format of ${refData}; use .csv or .jsonl`) : undefined
    data = await scan('workload.data', format)
    if (data.rows === 0) fail('workload.data', `${w.data} has no data rows`)
    checkColumns(data, w.input.columns, 'workload.input.columns', w.data, fail)
    if (w.reference != null) {
      if (w.reference.data != null) {
        reference = await scan('workload.reference.data', refFormat!)
        if (reference.rows !== data.rows) fail('workload.reference.data', `has ${reference.rows} rows but the data set has ${data.rows}; they must be row-aligned`)
        checkColumns(reference, [w.reference.column], 'workload.reference.column', w.reference.data, fail)
      } else {
        checkColumns(data, [w.reference.column], 'workload.reference.column', w.data, fail)
      }
    }
  }

  const sharding: Sharding = spec.shards.rows != null
    ? { kind: 'rows', ...spec.shards.rows }
    : spec.shards.iterations != null
      ? { kind: 'iterations', ...spec.shards.iterations }
      : { kind: 'grid', ...spec.shards.grid! }
  const items = sharding.kind === 'rows' ? data!.rows : sharding.kind === 'iterations' ? sharding.total : Object.values(sharding.parameters).reduce((n, v) => n * v.length, 1)
  if (sharding.kind === 'grid' && !Number.isSafeInteger(items)) fail('shards.grid.parameters', 'the grid has more points than can be counted; split the campaign')
  const shards = Math.ceil(items / sharding.perShard)
  if (shards > MAX_SHARDS) {
    fail(`shards.${sharding.kind}.perShard`, `${shards.toLocaleString('en')} shards is more than a campaign may have (${MAX_SHARDS.toLocaleString('en')}); raise perShard to at least ${Math.ceil(items / MAX_SHARDS).toLocaleString('en')}, or split the campaign`)
  }
  const capabilities = new Set(spec.requires.capabilities)
  for (const flag of spec.requires.cpuFlags) capabilities.add(`cpu.${ARM_FLAGS.has(flag) ? 'arm' : 'x86'}.${flag}`)
  if (w.kind === 'exec') capabilities.add(`exec.${w.command}`)
  return {
    spec,
    baseDir,
    assets,
    sharding,
    requires: { capabilities: [...capabilities], minMemoryBytes: spec.requires.minMemoryGB * 2 ** 30, ...(spec.requires.labels != null ? { labels: spec.requires.labels } : {}) },
    data,
    reference,
    source
  }
}

/** Stores the campaign's files (by content hash) and returns the spec the mesh runs. */
export async function resolveCampaign (loaded: LoadedCampaign, putFile: (path: string, name: string) => Promise<BlobRef>): Promise<CampaignSpec> {
  const refs = new Map<string, BlobRef>()
  for (const a of loaded.assets) refs.set(a.field, a.stored ?? await putFile(a.path, a.name))
  const ref = (field: string): BlobRef => refs.get(field)!
  const w = loaded.spec.workload
  let workload: Workload
  if (w.kind === 'module') {
    workload = { kind: 'module', module: ref('workload.module') }
  } else if (w.kind === 'exec') {
    workload = { kind: 'exec', command: w.command }
  } else {
    const dataSet = (blob: BlobRef, index: DataSetIndex): DataSet => ({ blob, format: index.format, rows: index.rows, ...(index.columns != null ? { columns: index.columns } : {}) })
    workload = {
      kind: 'onnx',
      model: ref('workload.model'),
      data: dataSet(ref('workload.data'), loaded.data!),
      input: w.input,
      output: w.output,
      batchSize: w.batchSize,
      ...(w.executionProviders != null ? { executionProviders: w.executionProviders } : {}),
      ...(w.reference != null
        ? {
            reference: {
              column: w.reference.column,
              tolerance: w.reference.tolerance,
              ...(loaded.reference != null ? { data: dataSet(ref('workload.reference.data'), loaded.reference) } : {})
            }
          }
        : {})
    }
  }
  return {
    name: loaded.spec.name,
    workload,
    shards: loaded.sharding,
    requires: loaded.requires,
    priority: loaded.spec.priority,
    retry: {
      maxAttempts: loaded.spec.retry.maxAttempts,
      initialDelayMs: loaded.spec.retry.initialDelay,
      backoffFactor: loaded.spec.retry.backoffFactor,
      maxDelayMs: loaded.spec.retry.maxDelay
    },
    shardTimeoutMs: loaded.spec.shardTimeout,
    replicas: loaded.spec.replicas,
    params: loaded.spec.params,
    ...(loaded.spec.burst != null ? { burst: loaded.spec.burst } : {}),
    source: loaded.source
  }
}

function formatOf (path: string): 'csv' | 'jsonl' | undefined {
  const ext = extname(path).toLowerCase()
  if (ext === '.csv') return 'csv'
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl'
  return undefined
}

function checkColumns (data: DataSetIndex, wanted: string[], field: string, file: string, fail: (field: string, message: string) => never): void {
  const have = data.columns ?? data.firstKeys ?? []
  const missing = wanted.filter(c => !have.includes(c))
  if (missing.length > 0) {
    fail(field, `${file} has no ${data.format === 'csv' ? 'column' : 'key'} ${missing.map(m => `'${m}'`).join(', ')} (it has: ${have.slice(0, 12).join(', ')}${have.length > 12 ? ', …' : ''})`)
  }
}

function listIssues (error: z.ZodError): string {
  return error.issues.slice(0, 10).map(i => {
    const path = i.path.length > 0 ? i.path.map(String).join('.') : '(top level)'
    return `  - ${path}: ${i.message}`
  }).join('\n')
}

/** The git commit of the repository the campaign file sits in, if any. */
async function gitSource (file: string): Promise<{ gitCommit?: string, gitDirty?: boolean }> {
  try {
    const dir = dirname(file)
    const { stdout: commit } = await exec('git', ['-C', dir, 'rev-parse', 'HEAD'], { timeout: 5000 })
    const { stdout: status } = await exec('git', ['-C', dir, 'status', '--porcelain', '--', file], { timeout: 5000 })
    return { gitCommit: commit.trim(), gitDirty: status.trim() !== '' }
  } catch {
    return {}
  }
}
