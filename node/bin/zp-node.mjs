#!/usr/bin/env node
// Plain JavaScript old Node versions can parse, so they get a sentence, not a stack trace.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`zp-node: error: Node.js 22.18 or newer is required (this is ${process.version}); run it through npm (npx zp-node ...), which uses the project's pinned Node 24, or install Node 24\n`)
  process.exit(1)
}
const { main } = await import('../cli/zp-node.ts')
await main(process.argv)
