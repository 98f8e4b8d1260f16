import { randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { workloadFiles } from '../../actors/coordinator/session.ts'
import { fsReason, isNoSpace } from '../../node/blobs/errors.ts'
import { describeError } from '../../protocols/common/errors.ts'
import { ShardSchema, type ShardOutput } from '../../protocols/campaign/shard.ts'
import { SHA256_HEX, WorkloadSchema, type CampaignSpec } from '../../protocols/campaign/spec.ts'

/**
 * A detached campaign's folder on a file system the coordinator's node and
 * the compute nodes share (zp submit --on slurm):
 *
 *   manifest.json                   what every shard needs: workload, params, timeout, blob files
 *   blobs/<hash>                    the workload's files (a module as <hash>.mjs, so import() loads it as ESM)
 *   shards/<index>.json             { shard, attempt, resumeFrom? }: the shard as a worker's lease carries it
 *   out/shard-<index>.jsonl         its result rows, one JSON a line; renamed into place: the rename is the commit
 *   out/shard-<index>.meta.json     written before that rename: { attempt, durationMs, info, host, rows }
 *   out/shard-<index>.a<attempt>.error.json   { error, retryable }: why that attempt failed
 *
 * Every file is written aside and renamed into place, so a reader on any node
 * sees a whole file or none. Temp names carry random bytes, not a pid: the
 * writers are on different hosts.
 */

export const MANIFEST_VERSION = 1

const BlobPathSchema = z.string().regex(/^blobs\/[0-9a-f]{64}(\.mjs)?$/)

export const ManifestSchema = z.object({
  version: z.literal(MANIFEST_VERSION),
  campaignId: z.string().min(1),
  name: z.string(),
  workload: WorkloadSchema,
  params: z.record(z.string(), z.unknown()),
  shardTimeoutMs: z.number().int().positive(),
  /** hash → its file, relative to the folder */
  blobs: z.record(z.string().regex(SHA256_HEX), BlobPathSchema)
})
export type Manifest = z.infer<typeof ManifestSchema>

export const ShardEntrySchema = z.object({
  shard: ShardSchema,
  /** 1 for the first try; a resubmission rewrites the entry with the next */
  attempt: z.number().int().min(1),
  /** the module checkpoint a previous attempt saved */
  resumeFrom: z.unknown().optional()
})
export type ShardEntry = z.infer<typeof ShardEntrySchema>

export const ShardMetaSchema = z.object({
  attempt: z.number().int().min(1),
  durationMs: z.number().nonnegative(),
  info: z.record(z.string(), z.unknown()).optional(),
  /** the compute node that ran it */
  host: z.string(),
  /** lines in the out file: a shorter file is cut off */
  rows: z.number().int().nonnegative()
})
export type ShardMeta = z.infer<typeof ShardMetaSchema>

export const ShardErrorSchema = z.object({ error: z.string(), retryable: z.boolean() })
export type ShardError = z.infer<typeof ShardErrorSchema>

export type ManifestErrorCode = 'unwritable' | 'missing' | 'garbled'

/** A detached folder that cannot be written, or a file in it that is missing or not what zp wrote. */
export class ManifestError extends Error {
  override name = 'ManifestError'
  readonly code: ManifestErrorCode
  constructor (code: ManifestErrorCode, message: string) {
    super(message)
    this.code = code
  }
}

/** Where each file of a detached folder is. */
export function detachedPaths (dir: string) {
  return {
    manifest: join(dir, 'manifest.json'),
    blobs: join(dir, 'blobs'),
    shards: join(dir, 'shards'),
    out: join(dir, 'out'),
    entry: (index: number) => join(dir, 'shards', `${index}.json`),
    output: (index: number) => join(dir, 'out', `shard-${index}.jsonl`),
    meta: (index: number) => join(dir, 'out', `shard-${index}.meta.json`),
    error: (index: number, attempt: number) => join(dir, 'out', `shard-${index}.a${attempt}.error.json`)
  }
}

/** the committed out files; a temp name (`.shard-3.jsonl.tmp-…`) never matches */
const COMMITTED = /^shard-(\d+)\.jsonl$/
const SUBDIRS = ['blobs', 'shards', 'out'] as const

/**
 * Writes the manifest and places the workload's files: a hard link to the
 * node's blob store where it is on the same file system, else a copy, each
 * checked for its size. The manifest goes last, so one that is there names
 * files that are.
 */
export async function writeManifest (dir: string, opts: { campaignId: string, spec: CampaignSpec, blobPath: (hash: string) => string }): Promise<void> {
  const { spec } = opts
  const paths = detachedPaths(dir)
  await writing(dir, async () => { for (const sub of SUBDIRS) await mkdir(join(dir, sub), { recursive: true }) })
  const blobs: Record<string, string> = {}
  for (const ref of workloadFiles(spec)) {
    if (blobs[ref.hash] != null) continue
    const module = spec.workload.kind === 'module' && spec.workload.module.hash === ref.hash
    const rel = `blobs/${ref.hash}${module ? '.mjs' : ''}`
    await placeBlob(dir, join(dir, rel), opts.blobPath(ref.hash), ref)
    blobs[ref.hash] = rel
  }
  const manifest: Manifest = {
    version: MANIFEST_VERSION,
    campaignId: opts.campaignId,
    name: spec.name,
    workload: spec.workload,
    params: spec.params,
    shardTimeoutMs: spec.shardTimeoutMs,
    blobs
  }
  await writing(dir, async () => { await writeJsonAtomic(paths.manifest, manifest) })
}

/** Writes (or rewrites, for a resubmission) each shard's entry. */
export async function writeShards (dir: string, entries: readonly ShardEntry[]): Promise<void> {
  const paths = detachedPaths(dir)
  await writing(dir, async () => {
    await mkdir(paths.shards, { recursive: true })
    // a few at a time: each waits for its fsync, which on a network file system is a round trip
    for (let i = 0; i < entries.length; i += 16) {
      await Promise.all(entries.slice(i, i + 16).map(async e => { await writeJsonAtomic(paths.entry(e.shard.index), e) }))
    }
  })
}

export async function readManifest (dir: string): Promise<Manifest> {
  const file = detachedPaths(dir).manifest
  const raw = await readJson(file, `the campaign's detached folder ${dir} has no manifest; is it on a file system this machine mounts, and was the campaign not removed?`)
  const version = (raw as { version?: unknown } | null)?.version
  if (version !== MANIFEST_VERSION) {
    throw new ManifestError('garbled', `${file} is manifest version ${JSON.stringify(version)}; this zp-node reads version ${MANIFEST_VERSION}: run the same zp-node version on the compute nodes as on the coordinator`)
  }
  return parsed(ManifestSchema, raw, file)
}

export async function readShardEntry (dir: string, index: number): Promise<ShardEntry> {
  const file = detachedPaths(dir).entry(index)
  const raw = await readJson(file, `shard ${index} is not in the campaign (its entry was never written)`)
  const entry = parsed(ShardEntrySchema, raw, file)
  if (entry.shard.index !== index) throw new ManifestError('garbled', `${file} holds shard ${entry.shard.index}, not ${index}`)
  return entry
}

/** A committed shard's rows and meta; undefined until its out file is renamed into place. */
export async function readShardOutput (dir: string, index: number): Promise<{ output: ShardOutput, meta: ShardMeta } | undefined> {
  const paths = detachedPaths(dir)
  const file = paths.output(index)
  const text = await readOptional(file)
  if (text === undefined) return undefined
  const meta = parsed(ShardMetaSchema, await readJson(paths.meta(index), `shard ${index} was committed without its meta file`), paths.meta(index))
  if (text !== '' && !text.endsWith('\n')) throw new ManifestError('garbled', `${file} does not end with a line break: it was cut short`)
  const lines = text === '' ? [] : text.slice(0, -1).split('\n')
  if (lines.length !== meta.rows) throw new ManifestError('garbled', `${file} has ${lines.length} rows but its meta file says ${meta.rows}: one of them was cut short or replaced`)
  const rows = lines.map((line, i) => {
    try {
      return JSON.parse(line) as unknown
    } catch (err) {
      throw new ManifestError('garbled', `${file}:${i + 1}: not JSON (${describeError(err)})`)
    }
  })
  return { output: { rows, ...(meta.info != null ? { info: meta.info } : {}) }, meta }
}

/** Why attempt `attempt` of shard `index` failed, if it got far enough to say. */
export async function readShardError (dir: string, index: number, attempt: number): Promise<ShardError | undefined> {
  const file = detachedPaths(dir).error(index, attempt)
  const text = await readOptional(file)
  return text === undefined ? undefined : parsed(ShardErrorSchema, parseJson(text, file), file)
}

/** Shards whose out file is committed, in index order. */
export async function finishedShards (dir: string): Promise<number[]> {
  let names: string[]
  try {
    names = await readdir(detachedPaths(dir).out)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new ManifestError('missing', `cannot list ${detachedPaths(dir).out}: ${fsReason(err)}`)
  }
  return names.flatMap(n => { const m = COMMITTED.exec(n); return m != null ? [Number(m[1])] : [] }).sort((a, b) => a - b)
}

/**
 * Commits a shard's result: the meta file, then the rows to a temp file,
 * flushed to disk, renamed into place. A reader that sees the out file sees
 * all of it; a run killed before the rename leaves only a temp file, which
 * does not count.
 */
export async function commitShardOutput (dir: string, index: number, output: ShardOutput, meta: Omit<ShardMeta, 'rows' | 'info'>): Promise<void> {
  const paths = detachedPaths(dir)
  await writeJsonAtomic(paths.meta(index), { ...meta, ...(output.info != null ? { info: output.info } : {}), rows: output.rows.length } satisfies ShardMeta)
  const file = paths.output(index)
  await writeAtomic(file, async (fh) => {
    // in pieces: a shard's rows as one string could pass V8's string limit
    let chunk = ''
    for (const row of output.rows) {
      chunk += JSON.stringify(row) + '\n'
      if (chunk.length >= 1 << 20) {
        await fh.write(chunk)
        chunk = ''
      }
    }
    if (chunk !== '') await fh.write(chunk)
  })
}

export async function writeShardError (dir: string, index: number, attempt: number, error: ShardError): Promise<void> {
  await writeJsonAtomic(detachedPaths(dir).error(index, attempt), error)
}

/**
 * Removes a detached folder once its campaign is over. Only a folder that
 * holds a manifest, or nothing but what writeManifest makes, is removed: a
 * mistyped path never takes someone's files with it.
 */
export async function removeDetachedDir (dir: string): Promise<void> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw new ManifestError('unwritable', `cannot list ${dir} to remove it: ${fsReason(err)}`)
  }
  const ours = (n: string): boolean => (SUBDIRS as readonly string[]).includes(n) || n.startsWith('.manifest.json.tmp-')
  if (!names.includes('manifest.json') && !names.every(ours)) {
    throw new ManifestError('garbled', `${dir} is not a detached campaign folder (no manifest.json; it holds ${names.slice(0, 5).join(', ')}): not removed`)
  }
  await rm(dir, { recursive: true, force: true })
}

/** Runs a write into the detached folder; a failure becomes the error that says what to do. */
async function writing<T> (dir: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof ManifestError) throw err
    const fix = isNoSpace(err) ? 'free space there, or pass' : 'pass'
    throw new ManifestError('unwritable', `cannot write the detached campaign folder ${dir}: ${fsReason(err)}; ${fix} --shared-dir DIR that this node and the compute nodes can write`)
  }
}

/** A workload file in the folder: linked (or copied) aside, its size checked, renamed into place; one already there of the right size is kept. */
async function placeBlob (dir: string, dest: string, source: string, ref: { hash: string, size: number, name: string }): Promise<void> {
  if ((await stat(dest).catch(() => undefined))?.size === ref.size) return
  const tmp = tempName(dest)
  await writing(dir, async () => {
    try {
      await link(source, tmp)
    } catch {
      // another file system (EXDEV), or one without hard links: copy
      try {
        await copyFile(source, tmp)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).path !== source) throw err
        throw new ManifestError('missing', `cannot read blob ${ref.hash} (${ref.name}) at ${source}: ${fsReason(err)}; the campaign's files must be in this node's blob store`)
      }
    }
    const size = (await stat(tmp)).size
    if (size !== ref.size) {
      await unlink(tmp)
      throw new ManifestError('garbled', `blob ${ref.hash} (${ref.name}) at ${source} is ${size} bytes, but the campaign says ${ref.size}`)
    }
    await rename(tmp, dest)
  })
}

function tempName (path: string): string {
  const slash = path.lastIndexOf('/')
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.tmp-${randomBytes(6).toString('hex')}`
}

/** Writes `path` aside, flushes it to disk and renames it into place; the temp file is removed on failure. */
async function writeAtomic (path: string, write: (fh: Awaited<ReturnType<typeof open>>) => Promise<void>): Promise<void> {
  const tmp = tempName(path)
  try {
    const fh = await open(tmp, 'w')
    try {
      await write(fh)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
}

async function writeJsonAtomic (path: string, value: unknown): Promise<void> {
  await writeAtomic(path, async (fh) => { await fh.writeFile(JSON.stringify(value)) })
}

async function readOptional (file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ManifestError('missing', `cannot read ${file}: ${fsReason(err)}`)
  }
}

/** The JSON in `file`; a missing file is a ManifestError saying `missing`. */
async function readJson (file: string, missing: string): Promise<unknown> {
  const text = await readOptional(file)
  if (text === undefined) throw new ManifestError('missing', `${file} is missing: ${missing}`)
  return parseJson(text, file)
}

function parseJson (text: string, file: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ManifestError('garbled', `${file} is not valid JSON (${describeError(err)}); it was cut short or not written by zp`)
  }
}

function parsed<T> (schema: z.ZodType<T>, raw: unknown, file: string): T {
  const result = schema.safeParse(raw)
  if (result.success) return result.data
  const issues = result.error.issues.slice(0, 5).map(i => `${i.path.length > 0 ? i.path.join('.') : '(top level)'}: ${i.message}`)
  throw new ManifestError('garbled', `${file} is not what zp writes there: ${issues.join('; ')}`)
}
