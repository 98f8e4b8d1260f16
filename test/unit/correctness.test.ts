import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { correctness } from '../../actors/coordinator/correctness.ts'
import { scanDataSet } from '../../node/campaign/dataset.ts'
import { tempDir } from '../helpers.ts'

let dir: { path: string, remove: () => Promise<void> }
beforeAll(async () => { dir = await tempDir('zp-correctness-') })
afterAll(async () => { await dir.remove() })

describe('correctness report', () => {
  it('compares row i of a reference CSV with prediction i when a text column holds quoted newlines', async () => {
    const rows = 60
    const expected = (i: number): number => i * 0.5
    const lines = Array.from({ length: rows }, (_, i) => `${i},${i % 3 === 0 ? `"first line\nsecond, ""third"" line ${i}"` : `note ${i}`},${expected(i)}`)
    const file = join(dir.path, 'reference.csv')
    await writeFile(file, `id,note,want\r\n${lines.join('\r\n')}\r\n\r\n`)
    const index = await scanDataSet(file, 'csv', 16)
    expect(index.rows).toBe(rows)

    const predictions = Float64Array.from({ length: rows }, (_, i) => expected(i))
    const present = new Uint8Array(rows).fill(1)
    predictions[17] = expected(17) + 1
    present[40] = 0
    const report = await correctness({
      predictions,
      present,
      reference: { blob: { hash: '0'.repeat(64), size: 0, name: 'reference.csv' }, format: 'csv', rows: index.rows, columns: index.columns! },
      referencePath: file,
      column: 'want',
      tolerance: 1e-9
    })
    expect(report).toMatchObject({ compared: rows - 1, missing: 1, withinTolerance: rows - 2, matchRate: (rows - 2) / rows, maxAbsError: 1 })
    expect(report.worst).toEqual([
      { row: 40, expected: expected(40), got: null, absError: Infinity },
      { row: 17, expected: expected(17), got: expected(17) + 1, absError: 1 }
    ])
  })
})
