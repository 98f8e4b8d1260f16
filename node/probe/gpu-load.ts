import type { GpuLoad } from '../../protocols/membership/schema.ts'
import { firstLine, type CommandRunner } from './command.ts'

const MIB = 1024 * 1024

/** The command each vendor's tool answers with per-GPU utilisation and memory. */
export const NVIDIA_LOAD_ARGS = ['--query-gpu=index,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'] as const
/** `--showmemuse` only gives a percentage; `--showmeminfo vram` gives the bytes */
export const ROCM_LOAD_ARGS = ['--showuse', '--showmeminfo', 'vram', '--json'] as const

/** A number from a tool's text; null for `[N/A]`, `[Not Supported]`, `N/A` and the like. */
function numberOrNull (text: unknown): number | null {
  if (typeof text !== 'string' || text.trim() === '') return null
  const n = Number(text)
  return Number.isFinite(n) && n >= 0 ? n : null
}

const fraction = (percent: number | null): number | null => percent == null ? null : Math.min(1, Math.round(percent * 10) / 1000)

/**
 * Parses `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total
 * --format=csv,noheader,nounits`: one `0, 37, 1024, 81559` line per GPU,
 * utilisation in %, memory in MiB; `[N/A]` where a field is not available.
 */
export function parseNvidiaSmiLoad (stdout: string): GpuLoad[] {
  return stdout.split('\n')
    .map(line => line.split(',').map(f => f.trim()))
    .filter(fields => fields.length === 4 && /^\d+$/.test(fields[0]!))
    .map(([index, util, used, total]) => {
      const mib = (v: string | undefined): number | null => { const n = numberOrNull(v); return n == null ? null : Math.round(n * MIB) }
      return { index: Number(index), load: { util: fraction(numberOrNull(util)), memUsed: mib(used), memTotal: mib(total) } }
    })
    .sort((a, b) => a.index - b.index)
    .map(g => g.load)
}

/**
 * Parses `rocm-smi --showuse --showmeminfo vram --json`:
 * `{ "card0": { "GPU use (%)": "37", "VRAM Total Memory (B)": "…", "VRAM Total Used Memory (B)": "…" }, "system": … }`.
 * Values are strings; rocm-smi may print warnings before the JSON.
 */
export function parseRocmSmiLoad (stdout: string): GpuLoad[] {
  const start = stdout.indexOf('{')
  if (start < 0) return []
  const parsed: unknown = JSON.parse(stdout.slice(start))
  if (parsed === null || typeof parsed !== 'object') return []
  return Object.entries(parsed as Record<string, unknown>)
    .flatMap(([card, fields]) => {
      const m = /^card(\d+)$/.exec(card)
      if (m == null || fields === null || typeof fields !== 'object') return []
      const f = fields as Record<string, unknown>
      const bytes = (v: unknown): number | null => { const n = numberOrNull(v); return n == null ? null : Math.round(n) }
      return [{ index: Number(m[1]), load: { util: fraction(numberOrNull(f['GPU use (%)'])), memUsed: bytes(f['VRAM Total Used Memory (B)']), memTotal: bytes(f['VRAM Total Memory (B)']) } }]
    })
    .sort((a, b) => a.index - b.index)
    .map(g => g.load)
}

/** after this many failures in a row a tool is no longer asked (a driver gone bad would cost a spawn every sample) */
const GIVE_UP_AFTER = 3

/**
 * One vendor's tool. Absent binaries are noticed on the first sample and never
 * looked for again; a tool that keeps failing is dropped too.
 */
export class GpuLoadTool {
  readonly file: string
  readonly #args: readonly string[]
  readonly #parse: (stdout: string) => GpuLoad[]
  #failures = 0
  #gone = false

  constructor (file: string, args: readonly string[], parse: (stdout: string) => GpuLoad[]) {
    this.file = file
    this.#args = args
    this.#parse = parse
  }

  get gone (): boolean {
    return this.#gone
  }

  /** The GPUs it reports; [] once it is gone. Throws on a failure (the sample is skipped). */
  async read (run: CommandRunner, signal: AbortSignal): Promise<GpuLoad[]> {
    if (this.#gone) return []
    const result = await run(this.file, this.#args, signal).catch((err: unknown) => { this.#failed(); throw err })
    if (result.status === 'not-found') {
      this.#gone = true
      return []
    }
    if (result.code !== 0) {
      this.#failed()
      throw new GpuToolError(`${this.file} exited with code ${result.code}: ${firstLine(result)}`)
    }
    try {
      const gpus = this.#parse(result.stdout)
      this.#failures = 0
      return gpus
    } catch (err) {
      this.#failed()
      throw new GpuToolError(`${this.file} printed what could not be parsed: ${(err as Error).message}`)
    }
  }

  #failed (): void {
    if (++this.#failures >= GIVE_UP_AFTER) this.#gone = true
  }
}

export class GpuToolError extends Error {
  override name = 'GpuToolError'
}

export function gpuLoadTools (): GpuLoadTool[] {
  return [
    new GpuLoadTool('nvidia-smi', NVIDIA_LOAD_ARGS, parseNvidiaSmiLoad),
    new GpuLoadTool('rocm-smi', ROCM_LOAD_ARGS, parseRocmSmiLoad)
  ]
}
