import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { BlobRef } from '../protocols/campaign/spec.ts'

const PEER_SCRIPT = fileURLToPath(new URL('./peer.ts', import.meta.url))

/** The bench peer as its parent sees it: what it printed once listening, and how to stop it. */
export interface PeerProcess {
  peerId: string
  multiaddrs: string[]
  /** the blob it holds, when started with --blob-mb */
  blob?: BlobRef
  stop: () => Promise<void>
}

/** Starts bench/peer.ts with `args` and reads the line it prints once it listens. */
export async function spawnPeer (dataDir: string, args: string[], signal: AbortSignal, timeoutMs = 60_000): Promise<PeerProcess> {
  const child = spawn(process.execPath, [PEER_SCRIPT, dataDir, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  // closing stdin is how the peer is told to stop; a peer that already died must not turn that into an EPIPE crash here
  child.stdin.on('error', () => {})
  const exited = new Promise<number | null>(resolve => {
    child.once('exit', code => { resolve(code) })
    child.once('error', err => { stderr += err.message; resolve(null) })
  })
  const stop = async (): Promise<void> => {
    child.stdin.end()
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(kill)
  }
  try {
    const lines = createInterface({ input: child.stdout })
    const [line] = await Promise.race([
      once(lines, 'line', { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) }) as Promise<[string]>,
      exited.then(code => { throw new Error(`bench peer exited (code ${code}) before it listened:\n${stderr}`) })
    ])
    return { ...JSON.parse(line) as Omit<PeerProcess, 'stop'>, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
