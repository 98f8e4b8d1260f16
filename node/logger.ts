import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { pino, type Logger, type DestinationStream, type Level } from 'pino'
import pretty from 'pino-pretty'

export type { Logger }

export interface LoggerOptions {
  /** JSON log file (appended); its folder is created */
  file?: string
  level?: Level | 'silent'
  /** 'pretty' for people, 'json' for scripts, 'none' to log only to the file */
  console?: 'pretty' | 'json' | 'none'
  /** fields every line carries, e.g. { node: 'lab-3', peer: '12D3…' } */
  base?: Record<string, unknown>
}

/**
 * One logger per process: JSON lines to a file, and to the terminal either
 * pretty (a TTY) or as JSON (pipes, so scripts and tests can parse it).
 */
export function createLogger (opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? (process.env.ZP_LOG_LEVEL as Level | undefined) ?? 'info'
  const streams: Array<{ level: Level, stream: DestinationStream }> = []
  const consoleMode = opts.console ?? (process.stdout.isTTY ? 'pretty' : 'json')
  if (consoleMode === 'pretty') {
    streams.push({ level: 'trace', stream: pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', destination: 2 }) })
  } else if (consoleMode === 'json') {
    streams.push({ level: 'trace', stream: survive(pino.destination({ fd: 1, sync: false }), 'standard output') })
  }
  if (opts.file != null) {
    mkdirSync(dirname(opts.file), { recursive: true })
    streams.push({ level: 'trace', stream: survive(pino.destination({ dest: opts.file, mkdir: true, sync: false }), opts.file) })
  }
  return pino({ level, base: opts.base ?? null, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams))
}

/**
 * A log that cannot be written (a full disk) loses lines, never the node: the
 * failure is said once on stderr.
 */
function survive (dest: ReturnType<typeof pino.destination>, what: string): DestinationStream {
  let told = false
  dest.on('error', (err: Error) => {
    if (told) return
    told = true
    process.stderr.write(`zp: cannot write the log to ${what}: ${err.message}; log lines are lost until it can\n`)
  })
  return dest
}

/** A logger that drops everything, for units and library use without a node. */
export function silentLogger (): Logger {
  return pino({ level: 'silent' })
}
