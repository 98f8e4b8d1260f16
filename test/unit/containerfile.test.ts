import { existsSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isBuiltin } from 'node:module'
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DockerfileParser, PropertyInstruction, type Dockerfile, type Instruction } from 'dockerfile-ast'
import { parseAllDocuments } from 'yaml'
import { beforeAll, describe, expect, it } from 'vitest'
import pkg from '../../package.json' with { type: 'json' }
import { DEFAULT_API, DEFAULT_LISTEN } from '../../node/options.ts'
import { parseNodeCommand, parseZpNode } from './zp-node-argv.ts'

// deploy/container/Containerfile cannot be built here (no builder, no registry): this checks what a build and a
// `docker run` rely on, with a real Dockerfile parser and the real zp-node CLI.

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FILE = 'deploy/container/Containerfile'

let df: Dockerfile
/** the instructions of the last stage, the image that runs */
let final: Instruction[]

beforeAll(async () => {
  df = DockerfileParser.parse(await readFile(resolve(ROOT, FILE), 'utf8'))
  const all = df.getInstructions()
  const lastFrom = df.getFROMs().at(-1)!
  final = all.slice(all.findIndex(i => i === lastFrom))
})

const inFinal = (keyword: string): Instruction[] => final.filter(i => i.getKeyword() === keyword)
/** the exec form (JSON array) of ENTRYPOINT, CMD or HEALTHCHECK CMD; the shell form is refused */
function execForm (instruction: Instruction): string[] {
  const text = instruction.getArgumentsContent()!.replace(/^CMD\s+/, '')
  const argv: unknown = JSON.parse(text)
  if (!Array.isArray(argv)) throw new Error(`${instruction.getKeyword()} ${text} is not in exec form`)
  return argv as string[]
}
/** KEY=VALUE pairs of the final stage's ENV or LABEL instructions */
function properties (keyword: 'ENV' | 'LABEL'): Record<string, string> {
  const found: Record<string, string> = {}
  for (const i of inFinal(keyword)) {
    if (!(i instanceof PropertyInstruction)) throw new Error(`${keyword} not parsed as KEY=VALUE pairs`)
    for (const p of i.getProperties()) found[p.getName()] = p.getValue() ?? ''
  }
  return found
}

describe('the container image recipe', () => {
  it('builds on the project\'s Node 24, glibc (Debian slim), installing production dependencies only', () => {
    const version = df.getInitialARGs().find(a => a.getProperty()?.getName() === 'NODE_VERSION')?.getProperty()?.getValue()
    expect(version).toBe(pkg.devDependencies.node)
    expect(version).toMatch(/^24\./)
    const froms = df.getFROMs()
    expect(froms.length).toBeGreaterThanOrEqual(2)
    for (const from of froms) expect(from.getImage()).toBe('docker.io/library/node:${NODE_VERSION}-bookworm-slim')
    const install = df.getInstructions().filter(i => i.getKeyword() === 'RUN' && /\bnpm ci\b/.test(i.getArgumentsContent()!))
    expect(install.map(i => i.getArgumentsContent())).toEqual([expect.stringContaining('npm ci --omit=dev')])
    // the runtime stage takes node_modules from the build stage, never installs
    expect(inFinal('RUN').some(i => /\bnpm\b/.test(i.getArgumentsContent()!))).toBe(false)
  })

  it('runs zp-node as a fixed non-root uid, with its data dir a writable volume', async () => {
    const users = inFinal('USER').map(i => i.getArgumentsContent()!)
    expect(users).toHaveLength(1)
    const [uid, gid] = users[0]!.split(':').map(Number)
    expect(uid).toBeGreaterThan(0)
    const dataDir = properties('ENV').ZP_DATA_DIR
    expect(inFinal('VOLUME').map(i => i.getArgumentsContent())).toEqual([dataDir])
    const setup = inFinal('RUN').map(i => i.getArgumentsContent()!).join('\n')
    expect(setup).toContain(`groupadd --system --gid ${gid} zp`)
    expect(setup).toContain(`useradd --system --uid ${uid} --gid zp `)
    expect(setup).toContain(`chown zp:zp ${dataDir}`)
    // a relative --data-dir (the Kubernetes bridge's pods) lands in a folder the user owns
    expect(inFinal('WORKDIR').at(-1)!.getArgumentsContent()).toBe(dataDir)
    // the manifests run the pods as the same user, with the data volume where the image has it
    for (const file of ['bootstrap.yaml', 'gpu-daemonset.yaml']) {
      const docs = parseAllDocuments(await readFile(resolve(ROOT, 'deploy/k8s', file), 'utf8'))
      for (const doc of Array.isArray(docs) ? docs : []) {
        const obj = doc.toJS()
        if (obj.spec?.template == null) continue
        expect(obj.spec.template.spec.securityContext, file).toMatchObject({ runAsUser: uid, runAsGroup: gid, fsGroup: gid })
        expect(obj.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'data', mountPath: dataDir })
      }
    }
  })

  it('has an entrypoint, default command and health check that the real zp-node accepts', async () => {
    const [entrypoint] = inFinal('ENTRYPOINT').map(execForm)
    const [cmd] = inFinal('CMD').map(execForm)
    expect(entrypoint).toEqual(['zp-node'])
    const call = await parseNodeCommand([...entrypoint!.slice(1), ...cmd!])
    expect(call.command).toEqual(['start'])
    const [health] = inFinal('HEALTHCHECK').map(execForm)
    expect(health![0]).toBe('zp-node')
    expect((await parseZpNode(health!.slice(1))).command).toEqual(['status'])
    // a mistyped flag is refused, so the checks above would catch one
    await expect(parseNodeCommand(['start', '--trustmesh'])).rejects.toThrow(/unknown option '--trustmesh'/)
  })

  it('puts zp-node and zp on the PATH, linked to the executable scripts the image copies', () => {
    const links = inFinal('RUN').map(i => i.getArgumentsContent()!).join('\n')
    const workdir = inFinal('WORKDIR')[0]!.getArgumentsContent()!
    for (const bin of ['zp-node', 'zp'] as const) {
      const script = pkg.bin[bin]
      expect(links).toContain(`ln -s ${workdir}/${script} /usr/local/bin/${bin}`)
      // a symlinked script runs through its shebang, so it must be executable in the build context
      expect(statSync(resolve(ROOT, script)).mode & 0o111).not.toBe(0)
    }
  })

  it('exposes the mesh port and not the control API', () => {
    const meshPort = DEFAULT_LISTEN.split('/').at(-1)
    expect(inFinal('EXPOSE').map(i => i.getArgumentsContent())).toEqual([`${meshPort}/tcp`])
    expect(meshPort).not.toBe(String(DEFAULT_API.port))
  })

  it('carries the OCI labels, matching package.json', () => {
    const labels = properties('LABEL')
    expect(labels).toMatchObject({
      'org.opencontainers.image.title': 'zp-node',
      'org.opencontainers.image.version': pkg.version,
      'org.opencontainers.image.licenses': pkg.license
    })
    expect(labels['org.opencontainers.image.description']).toBeTruthy()
  })

  it('copies files that exist and that .dockerignore lets into the build context', async () => {
    const ignore = (await readFile(resolve(ROOT, '.dockerignore'), 'utf8')).split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    // an allowlist: everything out, then what the image copies back in
    expect(ignore[0]).toBe('*')
    const allowed = ignore.filter(l => l.startsWith('!')).map(l => l.slice(1))
    const sources = df.getCOPYs().filter(c => c.getFromFlag() == null).flatMap(c => c.getArguments().slice(0, -1).map(a => a.getValue()))
    expect(sources.length).toBeGreaterThan(0)
    for (const src of sources) {
      expect(existsSync(resolve(ROOT, src)), `COPY ${src}`).toBe(true)
      expect(allowed.some(a => src === a || src.startsWith(`${a}/`)), `COPY ${src} is not let in by .dockerignore`).toBe(true)
    }
  })

  it('holds every file the zp-node and zp commands load, and every package they import is a production dependency', async () => {
    const copied = df.getCOPYs().filter(c => c.getFromFlag() == null).flatMap(c => c.getArguments().slice(0, -1).map(a => a.getValue()))
    const { files, packages } = await importGraph(Object.values(pkg.bin).map(b => resolve(ROOT, b)))
    expect(files.size).toBeGreaterThan(50)
    for (const file of files) {
      const rel = relative(ROOT, file)
      expect(copied.some(src => rel === src || rel.startsWith(`${src}/`)), `${rel} is loaded by the CLI but not copied into the image`).toBe(true)
    }
    const production = Object.keys(pkg.dependencies)
    for (const name of packages) expect(production, `the CLI imports ${name}, which npm ci --omit=dev leaves out`).toContain(name)
  })
})

// `import … from 'x'`, `export … from 'x'`, `import 'x'`, `import('x')`, `new URL('./x', import.meta.url)`; type-only imports are erased
const IMPORT = /\b(?:import|export)\s+(type\s+)?[^'"();]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|new URL\(\s*['"](\.[^'"]*)['"]\s*,\s*import\.meta\.url\s*\)/g

/** loaded only when a test sets ZP_OPENAPI_CHECK (node/api/server.ts), with ajv, a dev dependency */
const TEST_ONLY = new Set(['node/api/openapi-check.ts'])

/** The files reachable from `entries` through relative imports and file URLs, and the packages they import. */
async function importGraph (entries: string[]): Promise<{ files: Set<string>, packages: Set<string> }> {
  const files = new Set<string>()
  const packages = new Set<string>()
  const queue = [...entries]
  while (queue.length > 0) {
    const file = queue.pop()!
    if (files.has(file) || TEST_ONLY.has(relative(ROOT, file))) continue
    files.add(file)
    if (!/\.(ts|mjs|js)$/.test(file)) continue
    for (const m of (await readFile(file, 'utf8')).matchAll(IMPORT)) {
      if (m[1] != null) continue
      const spec = m[2] ?? m[3] ?? m[4] ?? m[5]!
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec)
        if (!existsSync(target)) throw new Error(`${relative(ROOT, file)} names ${spec}, which does not exist`)
        queue.push(target)
      } else if (!isBuiltin(spec)) {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!)
      }
    }
  }
  return { files, packages }
}
