import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { quote, RayError, RayJobsClient, type RaySubmitRequest } from '../../bootstrap/ray/client.ts'
import { startFakeRay, type FakeRay } from '../clusters/fake-ray/index.ts'
import { waitFor } from '../helpers.ts'

/*
 * The Ray Jobs client against the test suite's fake head (Ray's documented
 * REST shapes, entrypoints run as real `sh -c` process groups), and the
 * failures Ray answers as text/plain turned into RayErrors that say what
 * failed, quote Ray and name the fix.
 */
let fake: FakeRay
let ray: RayJobsClient
let seq = 0
const nextId = (): string => `test-${++seq}`

async function rayError (p: Promise<unknown>): Promise<RayError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(RayError)
  return err as RayError
}

async function final (id: string): Promise<Awaited<ReturnType<RayJobsClient['info']>>> {
  return await waitFor(async () => {
    const info = await ray.info(id)
    return ['STOPPED', 'SUCCEEDED', 'FAILED'].includes(info.status) ? info : undefined
  }, { timeoutMs: 15_000, what: `job ${id} to end` })
}

beforeAll(async () => {
  fake = await startFakeRay({ cpus: 2 })
  ray = new RayJobsClient({ address: fake.address })
})

afterAll(async () => {
  await fake?.stop()
})

describe('RayJobsClient against the fake head', () => {
  it('submits, follows a job to SUCCEEDED with its exit code and logs', async () => {
    expect(await ray.version()).toEqual({ version: '4', rayVersion: '2.9.3' })
    const id = nextId()
    expect(await ray.submit({ entrypoint: 'echo "hello $GREETING"', submission_id: id, runtime_env: { env_vars: { GREETING: 'ray' } }, metadata: { 'zp.bridge': 'ray-1' } })).toEqual({ submissionId: id })
    const info = await final(id)
    expect(info).toMatchObject({ submissionId: id, status: 'SUCCEEDED', driverExitCode: 0, metadata: { 'zp.bridge': 'ray-1' }, envVars: { GREETING: 'ray' } })
    expect(info.endTime).toBeGreaterThanOrEqual(info.startTime!)
    expect(await ray.logs(id)).toBe('hello ray\n')
    expect(await ray.stop(id)).toBe(false)
  })

  it('a failed entrypoint is FAILED with Ray\'s message and the log tail', async () => {
    const id = nextId()
    await ray.submit({ entrypoint: 'echo boom; exit 3', submission_id: id })
    const info = await final(id)
    expect(info).toMatchObject({ status: 'FAILED', driverExitCode: 3 })
    expect(info.message).toBe('Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\nboom\n')
  })

  it('stop: SIGTERM to the entrypoint\'s process group, SIGKILL after RAY_JOB_STOP_WAIT_TIME_S, then STOPPED', async () => {
    const id = nextId()
    // the shell ignores SIGTERM, so only the SIGKILL after the wait ends it
    await ray.submit({ entrypoint: 'trap "" TERM; echo up; while :; do sleep 0.1; done', submission_id: id, runtime_env: { env_vars: { RAY_JOB_STOP_WAIT_TIME_S: '1' } } })
    await waitFor(async () => (await ray.logs(id)).includes('up'), { what: 'the entrypoint to run' })
    const started = Date.now()
    expect(await ray.stop(id)).toBe(true)
    expect((await ray.info(id)).status).toBe('RUNNING')
    const info = await final(id)
    expect(info.status).toBe('STOPPED')
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
    expect(info.message).toBe('Job was intentionally stopped.')
  })

  it('a job whose entrypoint resources are not free stays PENDING with job_id null; stopping it is STOPPED', async () => {
    const id = nextId()
    await ray.submit({ entrypoint: 'true', submission_id: id, entrypoint_num_cpus: 8 })
    const info = await ray.info(id)
    expect(info).toMatchObject({ status: 'PENDING' })
    expect(info.jobId).toBeUndefined()
    expect(info.message).toContain('waiting for resources')
    expect(fake.job(id)).toMatchObject({ job_id: null, driver_info: null, status: 'PENDING' })
    expect(await ray.stop(id)).toBe(true)
    expect((await ray.info(id)).status).toBe('STOPPED')
  })

  it('keeps the rest of Ray\'s shapes: the trailing slash, the job list, DELETE only of a final job (else a 500 in text)', async () => {
    const noSlash = await fetch(`${fake.address}/api/jobs`, { method: 'POST', body: '{"entrypoint": "true"}' })
    expect(noSlash.status).toBe(404)
    const id = nextId()
    await ray.submit({ entrypoint: 'sleep 30', submission_id: id })
    const list = await (await fetch(`${fake.address}/api/jobs/`)).json() as Array<Record<string, unknown>>
    expect(list.find(j => j.submission_id === id)).toMatchObject({ type: 'SUBMISSION', entrypoint: 'sleep 30', status: 'RUNNING' })
    const running = await fetch(`${fake.address}/api/jobs/${id}`, { method: 'DELETE' })
    expect(running.status).toBe(500)
    expect(running.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(quote(await running.text())).toBe(`"RuntimeError: Attempted to delete job '${id}', but it is in a non-terminal state RUNNING."`)
    await ray.stop(id)
    await final(id)
    expect(await (await fetch(`${fake.address}/api/jobs/${id}`, { method: 'DELETE' })).json()).toEqual({ deleted: true })
    expect((await rayError(ray.info(id))).code).toBe('not-found')
  })
})

describe('Ray\'s failures as RayErrors', () => {
  it('a duplicate submission id: 400, the id, Ray\'s words', async () => {
    const id = nextId()
    await ray.submit({ entrypoint: 'true', submission_id: id })
    const err = await rayError(ray.submit({ entrypoint: 'true', submission_id: id }))
    expect(err).toMatchObject({ code: 'duplicate', status: 400 })
    expect(err.message).toContain(`the submission id ${id} is already taken on ${fake.address}`)
    expect(err.message).toContain(`Ray said: "ValueError: Job with submission_id ${id} already exists. Please use a different submission_id."`)
  })

  it('a request of the wrong type: 400 with the exception line of Ray\'s traceback', async () => {
    const err = await rayError(ray.submit({ entrypoint: 42 } as unknown as RaySubmitRequest))
    expect(err).toMatchObject({ code: 'rejected', status: 400 })
    expect(err.message).toContain('Ray said: "TypeError: entrypoint must be a string, got <class \'int\'>"')
    expect(err.message).toContain('/api/version')
  })

  it('an unknown job: 404, the job is gone', async () => {
    const err = await rayError(ray.info('zp-ray-gone00'))
    expect(err).toMatchObject({ code: 'not-found', status: 404 })
    expect(err.message).toContain('Ray said: "Job zp-ray-gone00 does not exist"')
    expect(err.message).toContain('the job is gone')
    expect((await rayError(ray.stop('zp-ray-gone00'))).code).toBe('not-found')
  })

  it('a 500 from the dashboard: what failed, Ray\'s text, where to look', async () => {
    fake.failNext('submit', 500, 'No available agent to submit job, please try again later.')
    const err = await rayError(ray.submit({ entrypoint: 'true', submission_id: 'zp-ray-500000' }))
    expect(err).toMatchObject({ code: 'server', status: 500 })
    expect(err.message).toContain('failed submitting job zp-ray-500000 (500, Ray said: "No available agent to submit job, please try again later.")')
    expect(err.message).toContain('dashboard.log')
    // only that one request failed
    expect(await ray.submit({ entrypoint: 'true', submission_id: 'zp-ray-500000' })).toEqual({ submissionId: 'zp-ray-500000' })
  })

  it('nothing listening: the address, and the dashboard\'s port', async () => {
    const closed = await serve(() => {})
    await closed.close()
    const err = await rayError(new RayJobsClient({ address: closed.address }).version())
    expect(err.code).toBe('unreachable')
    expect(err.message).toContain(`cannot reach the Ray dashboard at ${closed.address} while asking for its version`)
    expect(err.message).toContain('ECONNREFUSED')
    expect(err.message).toContain('8265')
  })

  it('an address that is not a Ray dashboard: 404 on its API, or something other than JSON', async () => {
    const wrongPath = await rayError(new RayJobsClient({ address: `${fake.address}/not-ray` }).version())
    expect(wrongPath.code).toBe('no-api')
    expect(wrongPath.message).toContain('has no Ray Jobs API')
    const html = await serve((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Grafana</html>') })
    try {
      const err = await rayError(new RayJobsClient({ address: html.address }).version())
      expect(err.code).toBe('no-api')
      expect(err.message).toContain('"<html>Grafana</html>"')
    } finally {
      await html.close()
    }
  })

  it('a dashboard that does not answer: a timeout, not a hang', async () => {
    const silent = await serve(() => {})
    try {
      const err = await rayError(new RayJobsClient({ address: silent.address, timeoutMs: 200 }).info('zp-ray-1'))
      expect(err.code).toBe('timeout')
      expect(err.message).toContain('did not answer asking for job zp-ray-1 within 200 ms')
    } finally {
      await silent.close()
    }
  })

  it('quote: the exception line of a traceback, else the text, on one line and cut', () => {
    expect(quote('Traceback (most recent call last):\n  File "job_head.py", line 1\n    x\nValueError: bad\n')).toBe('"ValueError: bad"')
    expect(quote('Job x does not exist')).toBe('"Job x does not exist"')
    expect(quote('')).toBe('(an empty body)')
    expect(quote('y'.repeat(2000))).toHaveLength(503)
  })
})

async function serve (handler: Parameters<typeof createServer>[1]): Promise<{ address: string, close: () => Promise<void> }> {
  const server: Server = createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}
