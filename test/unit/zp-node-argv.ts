import type { Command } from 'commander'
import { multiaddr } from '@multiformats/multiaddr'
import { parseBootstrap } from '../../bootstrap/address.ts'
import { buildProgram as buildZp } from '../../node/cli/zp.ts'
import { buildProgram } from '../../node/cli/zp-node.ts'

// For the deploy tests: a command line written in a manifest or a Containerfile, run through the real zp-node
// program without starting anything.

export interface ZpNodeCall {
  /** the subcommand path, e.g. ['join'] or ['psk', 'generate'] */
  command: string[]
  /** its positional arguments */
  args: string[]
  /** its parsed flags, as the action would get them */
  opts: Record<string, unknown>
}

/**
 * Parses `argv` (what follows `zp-node`) with the program zp-node runs, its actions swapped for a recorder.
 * Throws what zp-node would refuse at parse time: an unknown command or flag, a missing argument or value, a
 * value its option parsers reject (--slots, --label, durations, --log-level choices).
 */
export async function parseZpNode (argv: string[]): Promise<ZpNodeCall> {
  return await parseWith(buildProgram(), 'zp-node', argv)
}

/** The same for `zp` (what follows `zp`), with the program zp runs. */
export async function parseZp (argv: string[]): Promise<ZpNodeCall> {
  return await parseWith(buildZp(), 'zp', argv)
}

async function parseWith (program: Command, bin: string, argv: string[]): Promise<ZpNodeCall> {
  let call: ZpNodeCall | undefined
  const prepare = (cmd: Command, path: string[]): void => {
    cmd.exitOverride().configureOutput({ writeOut: () => {}, writeErr: () => {} })
    if (path.length > 0 && cmd.commands.length === 0) {
      cmd.action((...params: unknown[]) => {
        const self = params.at(-1) as Command
        call = { command: path, args: self.args, opts: self.opts() }
      })
    }
    for (const sub of cmd.commands) prepare(sub, [...path, sub.name()])
  }
  prepare(program, [])
  await program.parseAsync(argv, { from: 'user' })
  if (call == null) throw new Error(`${bin} ${argv.join(' ')} runs no command`)
  return call
}

/**
 * A node command (start, join) as zp-node checks it before it starts: parsed as above, then the addresses as
 * the CLI reads them (bootstrap addresses, --listen, --announce).
 */
export async function parseNodeCommand (argv: string[]): Promise<ZpNodeCall> {
  const call = await parseZpNode(argv)
  const name = call.command.join(' ')
  if (name !== 'start' && name !== 'join') throw new Error(`zp-node ${argv.join(' ')} is not a node command (start or join)`)
  for (const addr of call.args) parseBootstrap(addr)
  for (const flag of ['listen', 'announce'] as const) {
    for (const addr of (call.opts[flag] as string[] | undefined) ?? []) multiaddr(addr)
  }
  return call
}
