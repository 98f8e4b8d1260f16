import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { CampaignStore } from '../actors/coordinator/store.ts'
import { createOnnxRunner } from '../actors/worker/runners/onnx-runner.ts'
import type { ShardOutput } from '../protocols/campaign/shard.ts'
import { BlobStore } from '../node/blobs/store.ts'
import { scanDataSet } from '../node/campaign/dataset.ts'
import { openDb, Storage } from '../node/storage.ts'
import { silentLogger } from '../node/logger.ts'
import { onnxTask, recordingContext, runnerEnv } from '../test/fixtures/runners/tasks.ts'
import type { OnnxIo } from './onnx-data.ts'

/**
 * What a one-node mesh does with an onnx campaign, step by step, each alone
 * in the bench process with the product's own code, so a gap between the mesh
 * and raw rows can be traced to its parts. The runner step is the worker's
 * counterpart of the raw pipeline; the others are work the raw pipeline does
 * not do.
 */
export const STEPS = [
  { key: 'ingest', name: 'submit: `scanDataSet` copying into the blob store (rows, shard offsets, slice hashes, the copy: one read)' },
  { key: 'runner', name: 'worker: ONNX runner over byte ranges of the stored data set, slots = cores in flight' },
  { key: 'store', name: 'coordinator: `CampaignStore.put` of each shard\'s rows (LevelDB)' }
] as const
export type Step = typeof STEPS[number]['key']

export interface StepRunner {
  /** seconds of wall time of each step over `data` */
  measure: (data: string, rows: number) => Promise<Record<Step, number>>
}

/** A warm ONNX runner and a LevelDB, both closed with `stack`; every measure gets a fresh blob store. */
export async function stepRunner (dir: string, model: string, io: OnnxIo, perShard: number, slots: number, stack: AsyncDisposableStack): Promise<StepRunner> {
  const runner = createOnnxRunner(runnerEnv({ slots }))
  stack.defer(async () => { await runner.close() })
  const db = await openDb(join(dir, 'db'), dir)
  stack.defer(async () => { await db.close() })
  const results = new CampaignStore(new Storage(db, silentLogger()))
  let measured = 0

  const measure = async (data: string, rows: number): Promise<Record<Step, number>> => {
    const seconds = {} as Record<Step, number>
    const timed = async <T>(step: Step, work: () => Promise<T>): Promise<T> => {
      const t0 = performance.now()
      const value = await work()
      seconds[step] = (performance.now() - t0) / 1000
      return value
    }
    const storeDir = join(dir, `blobs-${++measured}`)
    const store = await BlobStore.open(storeDir)
    try {
      const writer = await store.createWriter({ name: 'data.csv' })
      const { index, ref } = await timed('ingest', async () => {
        const scanned = await scanDataSet(data, 'csv', perShard, undefined, writer)
        const hash = await writer.finish()
        await writer.commit()
        return { index: scanned, ref: { hash, size: writer.bytes, name: 'data.csv' } }
      })
      const shards = index.offsets.length - 1
      const path = store.path(ref.hash)
      const workload = {
        data: { blob: ref, format: 'csv' as const, rows, columns: index.columns },
        input: { name: io.input, columns: [...io.columns] },
        output: { name: io.output, column: io.output },
        batchSize: io.batchSize
      }
      const outputs = await timed('runner', async () => {
        const out: ShardOutput[] = []
        let next = 0
        await Promise.all(Array.from({ length: slots }, async () => {
          for (let i = next++; i < shards; i = next++) {
            out[i] = await runner.run(onnxTask({ model, data: { path, start: index.offsets[i]!, end: index.offsets[i + 1]! } }, workload, { index: i, start: i * perShard, end: Math.min(rows, (i + 1) * perShard) }), recordingContext())
          }
        }))
        return out
      })
      await timed('store', async () => {
        const campaign = `c-bench${measured.toString().padStart(6, '0')}`
        for (const [i, o] of outputs.entries()) await results.apply(campaign, [{ op: 'result', index: i, result: { rows: o.rows, worker: 'bench', attempt: 1, durationMs: 0 } }])
      })
      return seconds
    } finally {
      await rm(storeDir, { recursive: true, force: true })
    }
  }
  return { measure }
}
