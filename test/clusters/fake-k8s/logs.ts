/**
 * What each pod's container wrote to stdout and stderr, interleaved as it
 * arrived (the container runtime's log), the previous instance's after a
 * restart, and followers for `follow=true`. Capped like the kubelet's
 * rotation: the oldest output goes first.
 */
const MAX_BYTES = 10 * 1024 * 1024

interface Entry {
  current: Buffer[]
  size: number
  previous?: Buffer
  followers: Set<(chunk: Buffer | null) => void>
}

export class LogBook {
  readonly #entries = new Map<string, Entry>()

  /** a container instance starts: what the last one wrote becomes `previous` */
  begin (uid: string): void {
    const entry = this.#entries.get(uid)
    if (entry === undefined) {
      this.#entries.set(uid, { current: [], size: 0, followers: new Set() })
      return
    }
    entry.previous = Buffer.concat(entry.current)
    entry.current = []
    entry.size = 0
  }

  append (uid: string, chunk: Buffer): void {
    const entry = this.#entries.get(uid)
    if (entry === undefined) return
    entry.current.push(chunk)
    entry.size += chunk.length
    while (entry.size > MAX_BYTES && entry.current.length > 1) entry.size -= entry.current.shift()!.length
    for (const f of entry.followers) f(chunk)
  }

  /** the container exited: followers are done */
  end (uid: string): void {
    const entry = this.#entries.get(uid)
    if (entry === undefined) return
    for (const f of entry.followers) f(null)
    entry.followers.clear()
  }

  has (uid: string, previous = false): boolean {
    const entry = this.#entries.get(uid)
    return entry !== undefined && (!previous || entry.previous !== undefined)
  }

  text (uid: string, opts: { previous?: boolean, tailLines?: number, limitBytes?: number } = {}): string {
    const entry = this.#entries.get(uid)
    let text = (opts.previous === true ? entry?.previous : entry === undefined ? undefined : Buffer.concat(entry.current))?.toString('utf8') ?? ''
    if (opts.tailLines !== undefined) text = tail(text, opts.tailLines)
    if (opts.limitBytes !== undefined) text = Buffer.from(text).subarray(0, opts.limitBytes).toString('utf8')
    return text
  }

  /** calls `onChunk` with each new chunk and null when the container exits; returns the unsubscribe */
  follow (uid: string, onChunk: (chunk: Buffer | null) => void): () => void {
    const entry = this.#entries.get(uid)
    if (entry === undefined) {
      onChunk(null)
      return () => {}
    }
    entry.followers.add(onChunk)
    return () => { entry.followers.delete(onChunk) }
  }

  drop (uid: string): void {
    this.end(uid)
    this.#entries.delete(uid)
  }
}

function tail (text: string, n: number): string {
  if (n <= 0) return ''
  const complete = text.endsWith('\n')
  const lines = (complete ? text.slice(0, -1) : text).split('\n')
  if (text === '') return ''
  return lines.slice(-n).join('\n') + (complete ? '\n' : '')
}
