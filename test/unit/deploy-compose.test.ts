import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import { parseNodeCommand, parseZpNode } from './zp-node-argv.ts'

/*
 * deploy/compose/compose.yaml cannot be run here (no Compose plugin, no
 * container runtime): it is parsed, its variables filled in as Compose does,
 * and every zp-node command in it goes through the real CLI's parser.
 */
const FILE = fileURLToPath(new URL('../../deploy/compose/compose.yaml', import.meta.url))
const REPO = fileURLToPath(new URL('../../', import.meta.url))
const ENV = { ZP_ANNOUNCE_IP: '10.0.0.7', ZP_BOOTSTRAP: '10.0.0.5:4170' }
/** zp-node's default --drain-timeout-ms */
const DRAIN_S = 60

/** parsed YAML, read by key */
type Json = Record<string, any>
let compose: Json

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error} (the error when VAR is unset or empty) */
function interpolate (text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (_all, name: string, op: string | undefined, arg: string | undefined) => {
    const v = env[name]
    if (v != null && v !== '') return v
    if (op === '-') return arg ?? ''
    if (op === '?') throw new Error(`${name}: ${arg}`)
    return ''
  })
}

async function load (env: Record<string, string>): Promise<Json> {
  return parse(interpolate(await readFile(FILE, 'utf8'), env), { merge: true })
}

/** what the container runs: the image's ENTRYPOINT (zp-node) and the service's command */
function argvOf (service: Json): string[] {
  expect(Array.isArray(service.command)).toBe(true)
  return service.command
}

beforeAll(async () => { compose = await load(ENV) })

/** seconds of a Compose duration such as 90s or 1m30s */
function seconds (d: string): number {
  let s = 0
  for (const [, n, unit] of d.matchAll(/(\d+)(h|m|s)/g)) s += Number(n) * (unit === 'h' ? 3600 : unit === 'm' ? 60 : 1)
  return s
}

describe('deploy/compose/compose.yaml', () => {
  it('has a bootstrap, a worker and a GPU profile, each a zp-node command the real CLI accepts', async () => {
    const services = compose.services
    expect(Object.keys(services).sort()).toEqual(['bootstrap', 'gpu', 'worker'])
    expect(Object.values<Json>(services).map(s => s.profiles)).toEqual([['bootstrap'], ['worker'], ['gpu']])
    const bootstrap = await parseNodeCommand(argvOf(services.bootstrap))
    expect(bootstrap.command).toEqual(['start'])
    expect(bootstrap.opts.announce).toEqual([`/ip4/${ENV.ZP_ANNOUNCE_IP}/tcp/4170`])
    for (const name of ['worker', 'gpu']) {
      const call = await parseNodeCommand(argvOf(services[name]))
      expect(call.command).toEqual(['join'])
      expect(call.args).toEqual([ENV.ZP_BOOTSTRAP])
    }
  })

  it('every service keeps its data in the volume, reads the key from the Compose secret and is checked by zp-node health', async () => {
    for (const [name, s] of Object.entries<Json>(compose.services)) {
      const call = await parseZpNode(argvOf(s))
      const mount = s.volumes.map((v: string) => v.split(':')).find(([vol]: string[]) => vol === 'data')
      expect(mount, name).toBeDefined()
      expect(call.opts.dataDir, name).toBe(mount[1])
      expect(s.secrets, name).toEqual(['zp-mesh-psk'])
      expect(call.opts.psk, name).toBe('/run/secrets/zp-mesh-psk')
      expect(s.healthcheck.test[0]).toBe('CMD')
      expect(s.healthcheck.test[1]).toBe('zp-node')
      const health = await parseZpNode(s.healthcheck.test.slice(2))
      expect(health.command).toEqual(['health'])
      expect(health.opts.dataDir).toBe(mount[1])
      // the drain must finish before Compose sends SIGKILL
      expect(s.stop_signal).toBe('SIGTERM')
      expect(seconds(s.stop_grace_period)).toBeGreaterThan(DRAIN_S)
      expect(existsSync(`${REPO}/${s.build.dockerfile}`), s.build.dockerfile).toBe(true)
    }
    expect(Object.keys(compose.secrets)).toEqual(['zp-mesh-psk'])
    expect(Object.keys(compose.volumes)).toEqual(['data'])
  })

  it('the GPU worker uses the host network and reserves the NVIDIA GPUs', () => {
    const gpu = compose.services.gpu
    expect(gpu.network_mode).toBe('host')
    expect(gpu.ports).toBeUndefined()
    expect(gpu.deploy.resources.reservations.devices).toEqual([{ driver: 'nvidia', count: 'all', capabilities: ['gpu'] }])
  })

  it('says which variable is missing, as Compose would', async () => {
    await expect(load({ ZP_ANNOUNCE_IP: '10.0.0.7' })).rejects.toThrow(/ZP_BOOTSTRAP: set ZP_BOOTSTRAP to the bootstrap machine's host:4170/)
    await expect(load({ ZP_BOOTSTRAP: '10.0.0.5:4170' })).rejects.toThrow(/ZP_ANNOUNCE_IP: set ZP_ANNOUNCE_IP/)
  })
})
