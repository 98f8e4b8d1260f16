import { statfs } from 'node:fs/promises'
import { Level } from 'level'
import type { Logger } from 'pino'
import { delay } from '../protocols/common/signals.ts'

export type Db = Level<string, unknown>

export class StorageError extends Error {
  override name = 'StorageError'
}

/** Another process holds the data dir's database: the CLI exits 2 (pick another --data-dir). */
export class DataDirInUseError extends StorageError {
  override name = 'DataDirInUseError'
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
      throw new DataDirInUseError(`data dir ${dataDir} is in use by another zp-node; stop that node or pass another --data-dir`)
    }
    throw new StorageError(`cannot open the node database in ${path}: ${cause?.message ?? (err as Error).message}`)
  }
  return db
}

function makeSublevel<V> (db: Db, name: string) {
  return db.sublevel<string, V>(name, { valueEncoding: 'json' })
}
export type Sublevel<V> = ReturnType<typeof makeSublevel<V>>

const RECOVERY_EVERY_MS = 2000
/** the database is reopened (a moment when reads fail too) only once its disk has this much free */
const REOPEN_FREE_BYTES = 4 * 2 ** 20

/**
 * The node's database, and its way back from a failed write. After an I/O
 * error (a full disk, above all) LevelDB refuses every later write until it is
 * reopened, even once space is back; so a failed write starts a loop that
 * reopens the database and its sublevels until a probe write succeeds. What
 * was written before the failure is all there afterwards.
 */
export class Storage {
  readonly db: Db
  readonly #log: Logger
  readonly #subs: Array<Sublevel<unknown>> = []
  #recovering: Promise<void> | undefined
  /** the failure recovery waits out, for the errors writes get meanwhile */
  #failure = ''
  #closed = false

  constructor (db: Db, log: Logger) {
    this.db = db
    this.#log = log
  }

  /** A sublevel this storage reopens along with the database. */
  sublevel<V> (name: string): Sublevel<V> {
    const sub = makeSublevel<V>(this.db, name)
    this.#subs.push(sub as Sublevel<unknown>)
    return sub
  }

  /**
   * Runs a write; an I/O failure starts recovery (and is rethrown for the
   * caller to report). While recovery runs, writes fail at once with the
   * failure that started it, never reaching a database that may be closed for
   * a moment ("Database is not open" says nothing to anyone).
   */
  async write<T> (work: () => Promise<T>): Promise<T> {
    if (this.#recovering != null) {
      throw Object.assign(new StorageError(`database writes are paused since they failed (${this.#failure}); free space on the disk of ${this.db.location}: they resume on their own`), { code: 'LEVEL_IO_ERROR' })
    }
    try {
      return await work()
    } catch (err) {
      if ((err as { code?: string }).code === 'LEVEL_IO_ERROR') this.#recover(err as Error)
      throw err
    }
  }

  get healthy (): boolean {
    return this.#recovering == null
  }

  #recover (err: Error): void {
    if (this.#recovering != null || this.#closed) return
    this.#failure = err.message
    this.#log.error({ err: err.message, location: this.db.location }, `database writes fail (${err.message}); free space on that disk: writes resume on their own`)
    this.#recovering = (async () => {
      for (let attempt = 1; !this.#closed; attempt++) {
        await delay(RECOVERY_EVERY_MS)
        try {
          // some failures pass (a write-ahead log write); others stick until the database is reopened,
          // which closes it for a moment: only once there is room again
          if (!await this.#probe()) {
            if (await freeBytes(this.db.location) < REOPEN_FREE_BYTES) continue
            await this.db.close()
            await this.db.open()
            for (const sub of this.#subs) await sub.open()
            if (!await this.#probe()) continue
          }
          this.#log.info({ attempts: attempt }, 'database writes work again')
          return
        } catch (retry) {
          this.#log.debug({ err: (retry as Error).message }, 'database still not writable')
        }
      }
    })().finally(() => { this.#recovering = undefined })
  }

  async #probe (): Promise<boolean> {
    try {
      await this.db.put('storage!probe', Date.now())
      return true
    } catch {
      return false
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#recovering?.catch(() => {})
    await this.db.close()
  }
}

/** Bytes free to this process on the disk holding `path` (Infinity when that cannot be told). */
async function freeBytes (path: string): Promise<number> {
  try {
    const s = await statfs(path)
    return s.bavail * s.bsize
  } catch {
    return Infinity
  }
}
