import { randomUUID } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach } from 'vitest'
import { OPENAPI_CHECK_ENV } from '../../node/api/server.ts'

/*
 * Every zp-node a process test starts inherits this environment, so its API
 * checks each response against node/api/openapi.yaml and appends what does
 * not match to one file; a test during which a line appeared fails. Set here,
 * not per node, so nodes started outside the harness (in network namespaces,
 * through runCli) are checked too.
 */
const file = join(tmpdir(), `zp-openapi-${process.pid}-${randomUUID()}.jsonl`)
process.env[OPENAPI_CHECK_ENV] = file
let reported = 0

async function failOnNewViolations (): Promise<void> {
  const lines = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(l => l !== '')
  const fresh = lines.slice(reported)
  reported = lines.length
  if (fresh.length === 0) return
  const problems = fresh.map(l => `  ${(JSON.parse(l) as { problem: string }).problem}`)
  throw new Error(`the control API sent responses that node/api/openapi.yaml does not describe (fix the document where it is wrong, else the server):\n${problems.join('\n')}`)
}

afterEach(failOnNewViolations)

// after the file's own afterAll (hooks run in reverse), so requests made while stopping count too
afterAll(async () => {
  try {
    await failOnNewViolations()
  } finally {
    await rm(file, { force: true })
  }
})
