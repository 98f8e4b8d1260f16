import { access } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { dataPaths, readNodeInfo, removeNodeInfo, removeNodeInfoSync, writeNodeInfo, type NodeInfo } from '../../node/datadir.ts'
import { tempDir } from '../helpers.ts'

const info = (pid: number): NodeInfo => ({
  peerId: '12D3KooWexample', name: 'n', multiaddrs: [], api: 'http://127.0.0.1:1', pid, startedAt: new Date(0).toISOString(), version: '0.0.0'
})

describe('node.json', () => {
  it('a stopping node removes its own node.json, never one a newer node on the same data dir wrote', async () => {
    const dir = await tempDir('zp-datadir-')
    try {
      await writeNodeInfo(dir.path, info(process.pid + 1))
      await removeNodeInfo(dir.path)
      removeNodeInfoSync(dir.path)
      expect((await readNodeInfo(dir.path))?.pid).toBe(process.pid + 1)

      await writeNodeInfo(dir.path, info(process.pid))
      await removeNodeInfo(dir.path)
      expect(await readNodeInfo(dir.path)).toBeUndefined()

      await writeNodeInfo(dir.path, info(process.pid))
      removeNodeInfoSync(dir.path)
      await expect(access(dataPaths(dir.path).nodeInfo)).rejects.toMatchObject({ code: 'ENOENT' })
      // nothing there: nothing to do, no error
      await removeNodeInfo(dir.path)
      removeNodeInfoSync(dir.path)
    } finally {
      await dir.remove()
    }
  })
})
