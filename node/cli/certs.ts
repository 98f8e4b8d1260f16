import { hostname } from 'node:os'
import type { Command } from 'commander'
import type { CertSet } from '../../bootstrap/certs/files.ts'
import { certPaths } from '../../bootstrap/certs/layout.ts'
import { clientNames, DEFAULT_DAYS, serverNames } from '../../bootstrap/certs/names.ts'
import { collect, positiveInt } from './errors.ts'

// `zp-node certs …`: the CA, server and client certificates of the mTLS front (deploy/caddy) before a node's
// control API. Private keys go to files only (mode 0600). The X.509 code loads only for these commands: it brings
// a global Reflect polyfill that a running node has no use for. CertsInputError is bad input: exit 2 (errors.ts).

function summary (dir: string, set: CertSet): string {
  const paths = certPaths(dir)
  const lines = [`CA ${set.ca.subject} (SHA-256 ${set.ca.fingerprint256}, until ${set.ca.notAfter.slice(0, 10)}): ${paths.caCert}; its key ${paths.caKey} stays here`]
  if (set.server != null) {
    lines.push(`  server  ${paths.serverCert} + .key for ${[...set.server.names.dns, ...set.server.names.ips].join(', ')} (until ${set.server.notAfter.slice(0, 10)})`)
  }
  for (const c of set.clients) lines.push(`  client  ${paths.clientCert(c.name)} + .key (until ${c.notAfter.slice(0, 10)})`)
  lines.push('install them as deploy/caddy/README.md says; private keys stay in files (mode 0600)')
  return lines.join('\n') + '\n'
}

export function certsCommands (program: Command): void {
  const certs = program.command('certs').description('make the CA, server and client certificates of the mTLS front before the control API (deploy/caddy)')

  certs.command('init').description('a new CA, a server certificate and client certificates, in a new folder')
    .requiredOption('--out <dir>', 'folder to write (refused if it already holds certificates)')
    .option('--name <host>', 'DNS name or IP address of the front, repeatable (default: localhost, 127.0.0.1 and this machine\'s hostname)', collect)
    .option('--client <name>', 'a client certificate to make, repeatable (default: admin)', collect)
    .option('--days <n>', `validity of the server and client certificates in days (default ${DEFAULT_DAYS})`, positiveInt('--days'))
    .action(async (flags: { out: string, name?: string[], client?: string[], days?: number }) => {
      const { initCerts } = await import('../../bootstrap/certs/files.ts')
      const set = await initCerts(flags.out, {
        names: serverNames(flags.name ?? [], hostname()),
        clients: clientNames(flags.client ?? []),
        days: flags.days ?? DEFAULT_DAYS
      })
      process.stdout.write(summary(flags.out, set))
    })

  certs.command('add-client').description('one more client certificate, signed by the CA of an existing folder')
    .argument('<name>', 'the client\'s name (its certificate\'s CN and file name)')
    .requiredOption('--out <dir>', 'the folder certs init wrote')
    .option('--days <n>', `validity in days (default ${DEFAULT_DAYS})`, positiveInt('--days'))
    .action(async (name: string, flags: { out: string, days?: number }) => {
      const { addClient } = await import('../../bootstrap/certs/files.ts')
      const set = await addClient(flags.out, name, { days: flags.days ?? DEFAULT_DAYS })
      process.stdout.write(summary(flags.out, set))
    })
}
