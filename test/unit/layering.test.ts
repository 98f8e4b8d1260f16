import { describe, expect, it } from 'vitest'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

async function sourceFiles (dir: string): Promise<string[]> {
  const entries = await readdir(join(ROOT, dir), { recursive: true, withFileTypes: true })
  return entries.filter(e => e.isFile() && e.name.endsWith('.ts')).map(e => relative(ROOT, join(e.parentPath, e.name)))
}

/** Every module specifier a file names: static imports and re-exports, side-effect imports, dynamic import(). */
function specifiers (source: string): string[] {
  const found: string[] = []
  for (const re of [/\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g]) {
    for (const m of source.matchAll(re)) found.push(m[1]!)
  }
  return found
}

describe('layering', () => {
  it('the checker sees every kind of import', () => {
    const src = "import { a } from '../x.ts'\nexport * from \"../y.ts\"\nimport '../z.ts'\nconst m = await import('../w.ts')\nimport type {\n  T\n} from '../v.ts'"
    expect(specifiers(src).sort()).toEqual(['../v.ts', '../w.ts', '../x.ts', '../y.ts', '../z.ts'])
  })

  it('no file under protocols/ imports from actors/: the wire layer does not depend on the runtime', async () => {
    const files = await sourceFiles('protocols')
    expect(files.length).toBeGreaterThan(10)
    const offending: string[] = []
    for (const file of files) {
      for (const spec of specifiers(await readFile(join(ROOT, file), 'utf8'))) {
        if (!spec.startsWith('.')) continue
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec))
        if (target === 'actors' || target.startsWith('actors/')) offending.push(`${file} imports ${spec}`)
      }
    }
    expect(offending).toEqual([])
  })
})
