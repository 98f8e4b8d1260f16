import { failed, ok, unavailable, type Capabilities } from './types.ts'

/** x86 flags that matter for vectorised and ML work, spelled as /proc/cpuinfo spells them. */
export const X86_FLAGS_OF_INTEREST = [
  'avx', 'avx2', 'fma', 'f16c',
  'avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16',
  'avx_vnni', 'amx_tile', 'amx_bf16', 'amx_int8'
] as const

/** arm features we report, with the cpuinfo spellings that mean them (32-bit kernels say neon, 64-bit say asimd). */
const ARM_FEATURES: ReadonlyArray<{ name: string, spellings: readonly string[] }> = [
  { name: 'neon', spellings: ['asimd', 'neon'] },
  { name: 'sve', spellings: ['sve'] },
  { name: 'sve2', spellings: ['sve2'] }
]

/**
 * Other sources (macOS sysctl, older lscpu, other tools) drop the underscores
 * that /proc/cpuinfo puts in some names; map those back so keys stay stable.
 */
const CPUINFO_SPELLING: Record<string, string> = {
  avx512vnni: 'avx512_vnni',
  avx512bf16: 'avx512_bf16',
  avx512fp16: 'avx512_fp16',
  avx512vbmi2: 'avx512_vbmi2',
  avx512bitalg: 'avx512_bitalg',
  avx512vpopcntdq: 'avx512_vpopcntdq',
  avx512vp2intersect: 'avx512_vp2intersect',
  avxvnni: 'avx_vnni',
  amxtile: 'amx_tile',
  amxbf16: 'amx_bf16',
  amxint8: 'amx_int8',
  'avx1.0': 'avx'
}

/** Splits a flags string (cpuinfo, lscpu or sysctl style) into cpuinfo-spelled names. */
export function parseCpuFlags (flags: string): Set<string> {
  const names = flags.toLowerCase().split(/\s+/).filter((f) => f !== '').map((f) => {
    const underscored = f.replaceAll('-', '_')
    return CPUINFO_SPELLING[underscored] ?? underscored
  })
  return new Set(names)
}

/** `cpu.x86` for x64/ia32, `cpu.arm` for arm/arm64, else `cpu.<arch>`. */
export function archFamily (arch: string): string {
  if (arch === 'x64' || arch === 'ia32') return 'x86'
  if (arch === 'arm' || arch === 'arm64') return 'arm'
  return arch.toLowerCase().replace(/[^a-z0-9_-]/g, '_')
}

/**
 * Per-flag capabilities under `cpu.<family>.`: each flag of interest is ok or
 * unavailable, and any further avx512* / amx* (x86) or sve* / sme* (arm) flag
 * present is reported ok, so new extensions show up without a code change.
 */
export function flagCapabilities (family: string, flagString: string): Capabilities {
  const present = parseCpuFlags(flagString)
  const caps: Capabilities = {}
  const wanted: ReadonlyArray<{ name: string, spellings: readonly string[] }> =
    family === 'x86' ? X86_FLAGS_OF_INTEREST.map((name) => ({ name, spellings: [name] }))
      : family === 'arm' ? ARM_FEATURES
        : []
  if (wanted.length === 0) return caps
  if (present.size === 0) {
    // Unknown is not the same as absent: say the flags could not be read.
    for (const { name } of wanted) caps[`cpu.${family}.${name}`] = failed('the CPU flags could not be read (lscpu and /proc/cpuinfo gave nothing)')
    return caps
  }
  for (const { name, spellings } of wanted) {
    caps[`cpu.${family}.${name}`] = spellings.some((s) => present.has(s))
      ? ok()
      : unavailable(`CPU does not report the ${spellings.join(' or ')} flag`)
  }
  const extra = family === 'x86' ? /^(avx512|amx)[a-z0-9_]*$/ : /^(sve|sme)[a-z0-9_]*$/
  for (const flag of present) {
    const key = `cpu.${family}.${flag}`
    if (extra.test(flag) && caps[key] === undefined) caps[key] = ok()
  }
  return caps
}
