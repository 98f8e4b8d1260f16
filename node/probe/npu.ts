import { readdir, readlink, readFile, realpath } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ok, unavailable, type Capabilities } from './types.ts'

export const NPU_INTEL_KEY = 'npu.intel'
const INTEL_NPU_DRIVER = 'intel_vpu'

interface AccelDevice {
  name: string
  /** the kernel driver bound to it; null where /dev has the node but sysfs does not say */
  driver: string | null
  pciAddress: string | null
  pciDeviceId: string | null
  devNode: string | null
}

const listOrEmpty = async (dir: string): Promise<string[]> => await readdir(dir).catch(() => [])
const orNull = async <T>(work: Promise<T>): Promise<T | null> => await work.catch(() => null)

/**
 * Intel NPUs (Meteor Lake and later) are DRM accel devices bound to intel_vpu:
 * /sys/class/accel/accelN/device/driver → …/drivers/intel_vpu, with /dev/accel/accelN.
 * `root` is '/' on a real host; tests point it at a fake tree.
 */
export async function probeIntelNpu (root = '/'): Promise<Capabilities> {
  const sysClass = join(root, 'sys/class/accel')
  const devDir = join(root, 'dev/accel')
  const devNodes = await listOrEmpty(devDir)
  const names = new Set([...await listOrEmpty(sysClass), ...devNodes].filter((n) => /^accel\d+$/.test(n)))
  const devices: AccelDevice[] = []
  for (const name of [...names].sort()) {
    const device = join(sysClass, name, 'device')
    const driverLink = await orNull(readlink(join(device, 'driver')))
    devices.push({
      name,
      driver: driverLink === null ? null : basename(driverLink),
      pciAddress: await orNull(realpath(device).then((p) => basename(p))),
      pciDeviceId: await orNull(readFile(join(device, 'device'), 'utf8').then((t) => t.trim())),
      devNode: devNodes.includes(name) ? join(devDir, name) : null
    })
  }
  // a device node whose driver sysfs does not reveal still counts: containers often see /dev but not /sys
  const intel = devices.filter((d) => d.driver === INTEL_NPU_DRIVER || (d.driver === null && d.devNode !== null))
  if (intel.length > 0) return { [NPU_INTEL_KEY]: ok({ devices: intel, count: intel.length }) }
  const others = devices.filter((d) => d.driver !== null).map((d) => `${d.name} is bound to ${d.driver}`)
  const seen = others.length > 0 ? ` (${others.join(', ')})` : ''
  return { [NPU_INTEL_KEY]: unavailable(`no /dev/accel device bound to the ${INTEL_NPU_DRIVER} driver${seen}`) }
}
