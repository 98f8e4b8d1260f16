import { Command } from 'commander'
import { ApiClient, resolveApiTarget } from '../api/client.ts'
import type { PeerJson } from '../api/routes.ts'
import { resolveDataDir } from '../datadir.ts'
import { VERSION } from '../node.ts'
import { bridgeCommands } from './bridge.ts'
import { campaignCommands } from './campaigns.ts'
import { dashboardCommand } from './dashboard.ts'
import { logsCommand } from './logs.ts'
import { templatesCommands } from './templates.ts'
import { exitWithError } from './errors.ts'
import { renderPeerTable } from './format.ts'

interface TargetFlags {
  dataDir?: string
  api?: string
  token?: string
}

function targetOptions (cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', 'talk to the node using this data dir (default $ZP_DATA_DIR or ~/.zp)')
    .option('--api <url>', 'control API URL of the node (with --token)')
    .option('--token <token>', 'bearer token for --api')
}

async function client (flags: TargetFlags): Promise<ApiClient> {
  return new ApiClient(await resolveApiTarget({ dataDir: resolveDataDir(flags.dataDir), api: flags.api, token: flags.token }))
}

export function buildProgram (): Command {
  const program = new Command('zp')
    .description('ZP Mesh coordinator CLI: talks to a node\'s control API')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(zp --help lists the commands)')

  targetOptions(program.command('peers').description('list the mesh as this node sees it'))
    .option('--json', 'print JSON: an array of peers')
    .option('--wide', 'add columns for each peer\'s CPU, memory and GPU load (from its last heartbeat)')
    .action(async (flags: TargetFlags & { json?: boolean, wide?: boolean }) => {
      const peers = await (await client(flags)).get<PeerJson[]>('/v1/peers')
      process.stdout.write(flags.json === true ? JSON.stringify(peers, null, 2) + '\n' : renderPeerTable(peers, Date.now(), { wide: flags.wide === true }) + '\n')
    })

  campaignCommands(program, targetOptions, async (flags) => await client(flags as TargetFlags))
  bridgeCommands(program, targetOptions, async (flags) => await client(flags as TargetFlags))
  dashboardCommand(program, targetOptions)
  templatesCommands(program)
  logsCommand(program, targetOptions, async (flags) => await client(flags as TargetFlags))

  return program
}

export async function main (argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv)
  } catch (err) {
    exitWithError('zp', err)
  }
}
