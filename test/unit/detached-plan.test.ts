import { describe, expect, it } from 'vitest'
import { ACCOUNTING_LAG_MS, arrayChunks, goneVerdict } from '../../bootstrap/slurm/detached-plan.ts'

describe('detached campaigns: sbatch arrays', () => {
  it('keeps task ids below the array span, shard index = base + task id', () => {
    const chunks = arrayChunks([5, 3, 4, 1200, 999, 1002, 3], 1000)
    expect(chunks).toEqual([
      { base: 3, ranges: '0-2,996,999', indexes: [3, 4, 5, 999, 1002] },
      { base: 1200, ranges: '0', indexes: [1200] }
    ])
    for (const c of chunks) for (const i of c.indexes) expect(i - c.base).toBeLessThan(1000)
  })

  it('a campaign of 2500 shards becomes three arrays that cover every shard once', () => {
    const all = Array.from({ length: 2500 }, (_, i) => i)
    const chunks = arrayChunks(all)
    expect(chunks.map(c => [c.base, c.ranges])).toEqual([[0, '0-999'], [1000, '0-999'], [2000, '0-499']])
    expect(chunks.flatMap(c => c.indexes)).toEqual(all)
  })

  it('nothing to submit, no array', () => {
    expect(arrayChunks([])).toEqual([])
  })
})

describe('detached campaigns: a task that left the queue without a result', () => {
  const base = { stderr: '', goneForMs: 1000, ok: false }
  it('waits for accounting, then calls it lost after the lag', () => {
    expect(goneVerdict({ ...base, final: false, cause: 'no accounting record yet' })).toEqual({ kind: 'wait' })
    expect(goneVerdict({ ...base, final: false, cause: 'x', goneForMs: ACCOUNTING_LAG_MS + 1 }).kind).toBe('lost')
  })

  it('cancelled or a failed node: run again, not counted against the shard', () => {
    expect(goneVerdict({ ...base, state: 'CANCELLED', final: true, cause: '7_1: CANCELLED' })).toEqual({ kind: 'lost', reason: 'Slurm 7_1: CANCELLED' })
    expect(goneVerdict({ ...base, state: 'NODE_FAIL', final: true, cause: 'node failed' }).kind).toBe('lost')
  })

  it('an exit code or the time limit counts, with what run-shard said and the stderr tail', () => {
    const v = goneVerdict({ ...base, state: 'FAILED', final: true, cause: '7_2: exit code 1', error: { error: 'shard 2: boom', retryable: true } })
    expect(v).toEqual({ kind: 'failed', error: 'shard 2: boom (Slurm: 7_2: exit code 1)', retryable: true })
    const t = goneVerdict({ ...base, state: 'TIMEOUT', final: true, cause: '7_3: TIMEOUT', stderr: 'a\nb\nslurmstepd: error: *** JOB 7 CANCELLED DUE TO TIME LIMIT ***\n' })
    expect(t).toEqual({ kind: 'failed', error: 'Slurm: 7_3: TIMEOUT; stderr: a | b | slurmstepd: error: *** JOB 7 CANCELLED DUE TO TIME LIMIT ***', retryable: true })
  })

  it('completed without a result file: waits for the shared file system, then runs the shard again', () => {
    expect(goneVerdict({ ...base, state: 'COMPLETED', final: true, ok: true, cause: '7_4: COMPLETED' })).toEqual({ kind: 'wait' })
    expect(goneVerdict({ ...base, state: 'COMPLETED', final: true, ok: true, cause: '7_4: COMPLETED', goneForMs: ACCOUNTING_LAG_MS + 1 }))
      .toEqual({ kind: 'lost', reason: '7_4: COMPLETED, but its result file never appeared in the shared dir' })
  })

  it('a shard that refused its input is not retried', () => {
    expect(goneVerdict({ ...base, state: 'FAILED', final: true, cause: 'exit code 3', error: { error: 'bad row', retryable: false } })).toMatchObject({ kind: 'failed', retryable: false })
  })
})
