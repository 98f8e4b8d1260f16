import { readdir, readFile } from 'node:fs/promises'

/** Live (not zombie) pids in a process group: a group whose leader exited may still hold its children. */
export async function groupMembers (pgid: number): Promise<number[]> {
  const found: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // fields after the command name (which may hold spaces and parentheses): state ppid pgrp …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] !== 'Z' && fields[0] !== 'X' && Number(fields[2]) === pgid) found.push(Number(entry))
  }
  return found
}

export function signalGroup (pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // the group is gone already
  }
}

export type Resources = Record<string, number>

/** The fake cluster's resources: what is free, taken when a task or an entrypoint starts, given back when it ends. */
export class ResourcePool {
  readonly total: Resources
  readonly available: Resources

  constructor (total: Resources) {
    this.total = { ...total }
    this.available = { ...total }
  }

  /** whether `needs` fits what is free now (or, with `ever`, the whole cluster: Ray calls the rest infeasible) */
  fits (needs: Resources, ever = false): boolean {
    const of = ever ? this.total : this.available
    return Object.entries(needs).every(([k, v]) => v <= 0 || (of[k] ?? 0) >= v - 1e-9)
  }

  take (needs: Resources): void {
    for (const [k, v] of Object.entries(needs)) this.available[k] = (this.available[k] ?? 0) - v
  }

  give (needs: Resources): void {
    for (const [k, v] of Object.entries(needs)) this.available[k] = (this.available[k] ?? 0) + v
  }
}

/** Ray's way of naming a Python value's type in its errors: <class 'int'> */
export function pyType (v: unknown): string {
  const name = v === null ? 'NoneType' : typeof v === 'boolean' ? 'bool' : typeof v === 'number' ? (Number.isInteger(v) ? 'int' : 'float') : typeof v === 'string' ? 'str' : Array.isArray(v) ? 'list' : 'dict'
  return `<class '${name}'>`
}

/** A failure as the dashboard words it: the Python traceback of the exception it caught. */
export function traceback (exception: string, where = 'submit_job'): string {
  return `Traceback (most recent call last):\n  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/dashboard/modules/job/job_head.py", line 287, in ${where}\n    raise\n${exception}\n`
}
