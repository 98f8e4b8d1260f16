import { describe, expect, it } from 'vitest'
import { CsvCursor, parseDecimal } from '../../protocols/campaign/csv.ts'

/** All records of `text`, fed to the cursor in chunks of `chunk` characters as the data reader does. */
function records (text: string, chunk = text.length): Array<{ line: number, fields: string[] }> {
  const cursor = new CsvCursor()
  const out: Array<{ line: number, fields: string[] }> = []
  let at = 0
  for (;;) {
    if (cursor.next()) out.push({ line: cursor.line, fields: Array.from({ length: cursor.fieldCount }, (_, i) => cursor.field(i)) })
    else if (!cursor.needsMore) return out
    else {
      cursor.feed(text.slice(at, at + chunk), at + chunk >= text.length)
      at += chunk
    }
  }
}

describe('CSV cursor', () => {
  it('reads plain, quoted and escaped fields, CRLF, blank lines and a trailing line break', () => {
    const text = '1,2.5,x\r\n\r\n"a, b","say ""hi""",\n"multi\nline",3,""\n4,5,6\n'
    expect(records(text)).toEqual([
      { line: 1, fields: ['1', '2.5', 'x'] },
      { line: 3, fields: ['a, b', 'say "hi"', ''] },
      { line: 4, fields: ['multi\nline', '3', ''] },
      { line: 6, fields: ['4', '5', '6'] }
    ])
    expect(records('7,8')).toEqual([{ line: 1, fields: ['7', '8'] }])
  })

  it('gives the same records whichever chunk boundaries the text arrives in', () => {
    const text = '1,2.5,x\r\n\r\n"a, b","say ""hi""",\n"multi\r\nline",3,""\n4,5,"6"\r\n7,8,9'
    const whole = records(text)
    expect(whole).toHaveLength(5)
    for (let chunk = 1; chunk < text.length; chunk++) expect(records(text, chunk), `chunks of ${chunk}`).toEqual(whole)
  })

  it('skips lines of only spaces and tabs, reads a quote inside a plain field as a character, and says where each record starts', () => {
    const text = 'a,b\n \t\r\n5" pipe,"x\ny"\n  \n7,8'
    expect(records(text).map(r => r.fields)).toEqual([['a', 'b'], ['5" pipe', 'x\ny'], ['7', '8']])
    for (let chunk = 1; chunk < text.length; chunk++) {
      const cursor = new CsvCursor()
      const starts: number[] = []
      for (let at = 0; at < text.length; at += chunk) {
        cursor.feed(text.slice(at, at + chunk), at + chunk >= text.length)
        while (cursor.skip()) starts.push(cursor.start)
      }
      expect(starts, `chunks of ${chunk}`).toEqual([0, text.indexOf('5'), text.indexOf('7')])
      expect(cursor.consumed).toBe(text.length)
    }
  })

  it('reads numbers from plain and quoted fields, and an empty or blank field as NaN, not 0', () => {
    const cursor = new CsvCursor()
    cursor.feed('-1.5e3,"42",, ,0x10,abc\n', true)
    expect(cursor.next()).toBe(true)
    expect(Array.from({ length: cursor.fieldCount }, (_, i) => cursor.number(i))).toEqual([-1500, 42, NaN, NaN, 16, NaN])
  })

  it('says where a quoted field goes wrong', () => {
    expect(() => records('1,"open\n2,3\n')).toThrow('line 1: a quoted field is never closed')
    expect(() => records('1,2\n"a"b,3\n')).toThrow('line 2: a quoted field is followed by "b" instead of a comma or the end of the line')
  })
})

describe('parseDecimal', () => {
  const parse = (text: string): number => parseDecimal(text, 0, text.length)

  it('reads plain decimals exactly as Number() does, and leaves everything else to Number()', () => {
    for (const text of ['0', '-0', '+7', '007', '1.', '.5', '-.25', '3.14159', '6.02e23', '1E-7', '1e+22', '123456789012345', '0.1', '0.1000000000000001']) {
      expect(Object.is(parse(text), Number(text)), text).toBe(true)
    }
    for (const text of ['', '-', '.', 'e5', '1e', '1e23', '1e-23', '1.5x', ' 1', '0x10', 'NaN', 'Infinity', '9007199254740993', '0.30000000000000004', '1,5']) {
      expect(parse(text), text).toBeNaN()
    }
  })

  it('agrees with Number() on 100k numbers formatted every usual way', () => {
    let state = 12345
    const random = (): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      return state / 4294967296
    }
    for (let k = 0; k < 100_000; k++) {
      const value = (random() - 0.5) * 10 ** Math.floor(random() * 16 - 8)
      for (const text of [String(value), value.toFixed(k % 8), value.toExponential(k % 10), String(Math.fround(value))]) {
        const parsed = parse(text)
        if (!Number.isNaN(parsed) && !Object.is(parsed, Number(text))) expect.fail(`${text}: parseDecimal gave ${parsed}, Number() ${Number(text)}`)
      }
    }
  })
})

describe('the byte fast path of the CSV cursor', () => {
  /** Record starts and lines as `feed` + `skip` find them, the text fed in chunks of `size` bytes. */
  function starts (bytes: Buffer, size: number, fast: boolean): Array<[number, number]> {
    const cursor = new CsvCursor()
    const out: Array<[number, number]> = []
    for (let at = 0; at < bytes.length; at += size) {
      const chunk = bytes.subarray(at, at + size)
      const plain = fast ? cursor.skipPlainLines(chunk, (start) => { out.push([start, cursor.line]) }) : 0
      cursor.feed(chunk.toString('latin1', plain), false)
      while (cursor.skip()) out.push([cursor.start, cursor.line])
    }
    cursor.feed('', true)
    while (cursor.skip()) out.push([cursor.start, cursor.line])
    return out
  }

  it('finds the same records on the same lines as the text path, quotes, blank lines and CRLF included', () => {
    let seed = 7
    const random = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
    const pieces = ['1,2,3', 'a,b', '', ' ', '\t \r', 'x,"q,1"', '"multi\nline",2', 'é,ü', '4,5\r', '"",""']
    for (let round = 0; round < 40; round++) {
      const lines = Array.from({ length: 60 }, () => pieces[Math.floor(random() * pieces.length)]!)
      // some files with no quote at all, where the fast path does the work
      const text = (round % 2 === 0 ? lines.filter(l => !l.includes('"')) : lines).join(random() < 0.5 ? '\n' : '\r\n') + (random() < 0.5 ? '\n' : '')
      const bytes = Buffer.from(text, 'utf8')
      for (const size of [1, 3, 7, 64, 4096]) expect(starts(bytes, size, true)).toEqual(starts(bytes, size, false))
    }
  })
})
