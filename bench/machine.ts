import { arch, availableParallelism, cpus, platform, release, totalmem } from 'node:os'

/** Where a figure was measured: absolute numbers only compare on the same kind of machine. */
export interface MachineInfo {
  cpuModel: string
  /** CPUs this process may use */
  cores: number
  memoryGiB: number
  os: string
  node: string
}

export function machineInfo (): MachineInfo {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version
  }
}
