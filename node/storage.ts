import { Level } from 'level'

export type Db = Level<string, unknown>

export class StorageError extends Error {
  override name = 'StorageError'
}

/**
 * Opens the node's LevelDB. LevelDB allows one process per database, so a
 * second node on the same data dir fails here, with a message saying so.
 */
export async function openDb (path: string, dataDir: string): Promise<Db> {
  const db = new Level<string, unknown>(path, { valueEncoding: 'json' })
  try {
    await db.open()
  } catch (err) {
    const cause = (err as { cause?: { code?: string, message?: string } }).cause
    if (cause?.code === 'LEVEL_LOCKED') {
      throw new StorageError(`data dir ${dataDir} is in use by another zp-node; stop that node or pass another --data-dir`)
    }
    throw new StorageError(`cannot open the node database in ${path}: ${cause?.message ?? (err as Error).message}`)
  }
  return db
}
