import { silentLogger } from '../node/logger.ts'
import { ZpNode } from '../node/node.ts'
import { fakeCapabilities } from '../test/mesh/harness.ts'
import { CPU_ACTOR, ECHO_ACTOR, ECHO_PROTOCOL, cpuActor, echoActor, serveRawEcho } from './echo.ts'

/**
 * The far end of the actor suite, in its own process so that each side has a
 * core and an event loop of its own: a ZpNode with a public echo actor, a CPU
 * time actor and a raw echo protocol. Usage: peer.ts <data-dir>. Prints
 * {"peerId":…,"multiaddrs":[…]} as one line once it listens, and stops when
 * its stdin closes (the bench is done, or has died).
 */
const dataDir = process.argv[2]
if (dataDir == null) {
  process.stderr.write('usage: bench/peer.ts <data-dir>\n')
  process.exit(2)
}

const node = await ZpNode.start({
  dataDir,
  name: 'bench-peer',
  listen: ['/ip4/127.0.0.1/tcp/0'],
  api: false,
  probe: fakeCapabilities(),
  logger: silentLogger(),
  logFile: false,
  writeNodeInfo: false
})
node.host.spawn(ECHO_ACTOR, echoActor())
node.host.spawn(CPU_ACTOR, cpuActor())
await node.libp2p.handle(ECHO_PROTOCOL, (stream) => { serveRawEcho(stream) })
process.stdout.write(JSON.stringify({ peerId: node.peerId, multiaddrs: node.multiaddrs() }) + '\n')

const stop = (): void => {
  void node.stop().finally(() => {
    // libp2p can leave sockets half-closed for a while; the node is done
    setTimeout(() => process.exit(0), 100).unref()
  })
}
process.stdin.once('end', stop)
process.stdin.resume()
process.once('SIGTERM', stop)
