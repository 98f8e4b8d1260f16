import { execCommand, firstLine, type CommandRunner } from './command.ts'
import { failed, ok, unavailable, type Capabilities } from './types.ts'
import type { Capability } from '../../protocols/membership/capabilities.ts'

export const CUDA_KEY = 'gpu.nvidia.cuda'
const FIELDS = ['index', 'name', 'memory.total', 'driver_version', 'compute_cap']

export interface NvidiaDevice {
  index: number
  name: string
  memoryMB: number | null
  driver: string
  computeCapability: string | null
}

const numberOrNull = (text: string | undefined): number | null => {
  const n = Number(text)
  return text === undefined || text === '' || Number.isNaN(n) ? null : n
}

/**
 * Parses `--format=csv,noheader,nounits` rows. The name may itself contain
 * commas, so the fixed fields are taken from both ends and the rest is the name.
 */
export function parseNvidiaSmi (stdout: string, withComputeCap = true): NvidiaDevice[] {
  const tail = withComputeCap ? 3 : 2
  return stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((line) => {
    const cells = line.split(',').map((c) => c.trim())
    const rest = cells.slice(-tail)
    const known = (v: string | undefined): string | null => v === undefined || v === '' || v.startsWith('[') ? null : v
    return {
      index: numberOrNull(cells[0]) ?? -1,
      name: cells.slice(1, cells.length - tail).join(', '),
      memoryMB: numberOrNull(rest[0]),
      driver: rest[1] ?? '',
      computeCapability: withComputeCap ? known(rest[2]) : null
    }
  })
}

/** `gpu.nvidia.cuda` from nvidia-smi: present and answering is what a CUDA workload needs. */
export async function probeCuda (signal: AbortSignal, run: CommandRunner = execCommand): Promise<Capabilities> {
  return { [CUDA_KEY]: await cudaCapability(signal, run) }
}

async function cudaCapability (signal: AbortSignal, run: CommandRunner): Promise<Capability> {
  const query = async (fields: string[]) => await run('nvidia-smi', [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'], signal)
  let withComputeCap = true
  let result = await query(FIELDS)
  // drivers before ~510 do not know compute_cap and refuse the whole query
  if (result.status === 'exited' && result.code !== 0 && /compute_cap/.test(result.stdout + result.stderr)) {
    withComputeCap = false
    result = await query(FIELDS.slice(0, -1))
  }
  if (result.status === 'not-found') return unavailable('nvidia-smi not found on PATH')
  if (result.code !== 0) return failed(`nvidia-smi exited with code ${result.code}: ${firstLine(result)}`)
  const devices = parseNvidiaSmi(result.stdout, withComputeCap)
  if (devices.length === 0) return unavailable('nvidia-smi reports no GPUs')
  return ok({ devices, count: devices.length })
}
