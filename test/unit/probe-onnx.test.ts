import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { silentLogger } from '../../node/logger.ts'
import { probeOnnx } from '../../node/probe/onnx.ts'

const fixture = (name: string): string => resolve(import.meta.dirname, '../fixtures/probe-plugins', name)
const logger = silentLogger()

// The real child is covered by probe.test.ts; these stand-ins crash or hang after reporting cpu.
describe('ORT probe child isolation', () => {
  it('keeps what a crashing child reported and turns the rest into errors naming the signal', async () => {
    const caps = await probeOnnx({ timeoutMs: 20_000, logger, childScript: fixture('onnx-child-crash.mjs') })
    expect(caps['onnx.ep.cpu']).toEqual({ status: 'ok', info: { bundled: true } })
    for (const key of ['onnx.ep.cuda', 'onnx.ep.webgpu']) {
      expect(caps[key]).toEqual({
        status: 'error',
        message: 'probe child exited with signal SIGSEGV before reporting; last stderr line: Segmentation fault in libfake_provider.so'
      })
    }
  }, 20_000)

  it('kills a hanging child on timeout and keeps what it reported', async () => {
    // long enough for a loaded machine to start node and print the cpu line
    const caps = await probeOnnx({ timeoutMs: 4_000, logger, childScript: fixture('onnx-child-hang.mjs') })
    expect(caps['onnx.ep.cpu']).toEqual({ status: 'ok' })
    expect(caps['onnx.ep.webgpu']).toMatchObject({ status: 'error', message: expect.stringMatching(/^timed out after 4000ms/) })
  }, 20_000)

  it('reports every candidate when the child cannot even start its script', async () => {
    const caps = await probeOnnx({ timeoutMs: 20_000, logger, childScript: fixture('no-such-child.mjs') })
    expect(caps['onnx.ep.cpu']).toMatchObject({ status: 'error', message: expect.stringMatching(/^probe child exited with code 1 before reporting; last stderr line: /) })
    expect(Object.values(caps).every((c) => c.status === 'error')).toBe(true)
  }, 20_000)

  it('kills the child and rejects when the caller aborts', async () => {
    const controller = new AbortController()
    const probing = probeOnnx({ timeoutMs: 20_000, logger, signal: controller.signal, childScript: fixture('onnx-child-hang.mjs') })
    const reason = new Error('stop')
    controller.abort(reason)
    await expect(probing).rejects.toBe(reason)
  })
})
