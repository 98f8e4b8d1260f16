import { execFile, type ExecFileException } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { delimiter, isAbsolute, join } from 'node:path'

export type CommandResult =
  | { status: 'exited', code: number, stdout: string, stderr: string }
  | { status: 'not-found' }

/**
 * Runs a command to completion. Injectable so tests can feed canned tool output
 * (nvidia-smi, rocm-smi) without the hardware. Aborting `signal` kills the command.
 */
export type CommandRunner = (file: string, args: readonly string[], signal: AbortSignal) => Promise<CommandResult>

/**
 * Looks the command up on PATH first: spawning is synchronous in Node, and on
 * most machines nvidia-smi and rocm-smi are simply absent.
 */
async function onPath (file: string): Promise<boolean> {
  const candidates = isAbsolute(file) ? [file] : (process.env.PATH ?? '').split(delimiter).filter(d => d !== '').map(d => join(d, file))
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK)
      return true
    } catch {}
  }
  return false
}

export const execCommand: CommandRunner = async (file, args, signal) => {
  if (!await onPath(file)) return { status: 'not-found' }
  return await run(file, args, signal)
}

const run = async (file: string, args: readonly string[], signal: AbortSignal): Promise<CommandResult> => await new Promise((resolve, reject) => {
  execFile(file, args, { signal, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8', windowsHide: true }, (error: ExecFileException | null, stdout, stderr) => {
    if (error === null) {
      resolve({ status: 'exited', code: 0, stdout, stderr })
    } else if (error.code === 'ENOENT') {
      resolve({ status: 'not-found' })
    } else if (typeof error.code === 'number') {
      resolve({ status: 'exited', code: error.code, stdout, stderr })
    } else {
      // killed by a signal, aborted, EACCES, output too large: the probe reports it as an error
      reject(error)
    }
  })
})

/** The line worth showing from a failed command: first non-empty stderr line, else stdout's. */
export function firstLine (result: { stdout: string, stderr: string }): string {
  const pick = (text: string): string | undefined => text.split('\n').map((l) => l.trim()).find((l) => l !== '')
  return pick(result.stderr) ?? pick(result.stdout) ?? '(no output)'
}
