import { execCommand, firstLine, type CommandRunner } from './command.ts'
import { failed, ok, unavailable, type Capabilities } from './types.ts'
import type { Capability } from '../../protocols/membership/capabilities.ts'

export const ROCM_KEY = 'gpu.amd.rocm'

export interface RocmDevice {
  card: string
  series: string | null
  model: string | null
  gfxVersion: string | null
}

/**
 * Parses `rocm-smi --showproductname --json`: `{ "card0": { "Card series": …, "GFX Version": … } }`.
 * rocm-smi may print warnings before the JSON, so parsing starts at the first brace.
 */
export function parseRocmSmi (stdout: string): RocmDevice[] {
  const start = stdout.indexOf('{')
  if (start < 0) return []
  const parsed: unknown = JSON.parse(stdout.slice(start))
  if (parsed === null || typeof parsed !== 'object') return []
  const text = (v: unknown): string | null => typeof v === 'string' && v !== '' ? v : null
  return Object.entries(parsed as Record<string, unknown>)
    .filter(([card, fields]) => /^card\d+$/.test(card) && fields !== null && typeof fields === 'object')
    .map(([card, fields]) => {
      const f = fields as Record<string, unknown>
      return { card, series: text(f['Card series']), model: text(f['Card model']), gfxVersion: text(f['GFX Version']) }
    })
}

export async function probeRocm (signal: AbortSignal, run: CommandRunner = execCommand): Promise<Capabilities> {
  return { [ROCM_KEY]: await rocmCapability(signal, run) }
}

async function rocmCapability (signal: AbortSignal, run: CommandRunner): Promise<Capability> {
  const result = await run('rocm-smi', ['--showproductname', '--json'], signal)
  if (result.status === 'not-found') return unavailable('rocm-smi not found on PATH')
  if (result.code !== 0) return failed(`rocm-smi exited with code ${result.code}: ${firstLine(result)}`)
  const devices = parseRocmSmi(result.stdout)
  if (devices.length === 0) return unavailable('rocm-smi reports no GPUs')
  return ok({ devices, count: devices.length })
}
