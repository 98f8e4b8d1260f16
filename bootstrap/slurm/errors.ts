export type SlurmErrorCode =
  /** a Slurm command is not on PATH */
  | 'not-installed'
  /** SLURM_CONF names a file that does not exist */
  | 'no-config'
  /** sbatch: no such partition */
  | 'invalid-partition'
  /** slurmctld does not answer */
  | 'unreachable'
  /** munge refused or could not sign the request */
  | 'auth'
  /** sbatch refused the job for another reason (its words are in the message) */
  | 'rejected'
  /** the command did not finish within the client's timeout */
  | 'timeout'
  /** the command failed otherwise */
  | 'failed'

/** A Slurm command failed; the message names the cause and the fix, and ends with the command's stderr. */
export class SlurmError extends Error {
  override name = 'SlurmError'
  readonly code: SlurmErrorCode
  readonly command: string
  readonly stderr: string

  constructor (init: { code: SlurmErrorCode, command: string, message: string, stderr?: string, cause?: unknown }) {
    const stderr = tail(init.stderr ?? '')
    super(stderr !== '' ? `${init.message} (${init.command} said: ${stderr})` : init.message, { cause: init.cause })
    this.code = init.code
    this.command = init.command
    this.stderr = stderr
  }
}

const TAIL_CHARS = 600

/** The last lines of a command's stderr, on one line, at most TAIL_CHARS */
export function tail (text: string): string {
  const oneLine = text.trim().split('\n').map(l => l.trim()).filter(l => l !== '').join(' | ')
  return oneLine.length > TAIL_CHARS ? `…${oneLine.slice(-TAIL_CHARS)}` : oneLine
}

/** Why a Slurm command that exited non-zero failed, read from its stderr; undefined when nothing known matches. */
export function classify (stderr: string): { code: SlurmErrorCode, message: string } | undefined {
  if (/Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted/i.test(stderr)) {
    return { code: 'unreachable', message: 'the Slurm controller (slurmctld) is unreachable: check that it runs (scontrol ping) and that SLURM_CONF names this cluster\'s slurm.conf' }
  }
  if (/munge|authentication (error|failure)|Invalid authentication credential/i.test(stderr)) {
    return { code: 'auth', message: 'munge could not authenticate the request: check that munged runs here with the cluster\'s key' }
  }
  if (/cannot stat file|Unable to process configuration file/i.test(stderr)) {
    return { code: 'no-config', message: 'no Slurm configuration was found: set SLURM_CONF to the cluster\'s slurm.conf' }
  }
  const refused = /Batch job submission failed: (.+)/.exec(stderr)
  if (refused != null) {
    return { code: 'rejected', message: `Slurm refused the job: ${refused[1]!.trim()}; change the sbatch options (partition, time, gres, cpus, mem, extra arguments)` }
  }
  return undefined
}
