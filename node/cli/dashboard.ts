import type { Command } from 'commander'
import open from 'open'
import { ApiClient, resolveApiTarget } from '../api/client.ts'
import { resolveDataDir } from '../datadir.ts'

interface DashboardFlags {
  dataDir?: string
  api?: string
  token?: string
  printUrl?: boolean
}

/** `zp dashboard`: a one-time login link to the node's web dashboard, opened in a browser or printed. */
export function dashboardCommand (program: Command, target: (cmd: Command) => Command): void {
  target(program.command('dashboard').description('open the node\'s web dashboard in a browser, logged in by a one-time link (the API token stays out of URLs)'))
    .option('--print-url', 'print the login link instead of opening a browser (it works once, within a minute; reach it through an SSH tunnel from elsewhere)')
    .action(async (flags: DashboardFlags) => {
      const api = await resolveApiTarget({ dataDir: resolveDataDir(flags.dataDir), api: flags.api, token: flags.token })
      const { path } = await new ApiClient(api).request<{ path: string }>('POST', '/v1/dashboard/login-tickets')
      const url = api.url + path
      if (flags.printUrl === true) {
        process.stdout.write(url + '\n')
        return
      }
      process.stderr.write(`opening the dashboard of the node at ${api.url} in a browser (if none opens, run 'zp dashboard --print-url' and open the link within a minute)\n`)
      await open(url)
    })
}
