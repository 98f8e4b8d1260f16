import { join } from 'node:path'

// The certificate folder: the CA (ca.crt, and ca.key that signs clients later and stays here), the server pair
// that the TLS front (Caddy) loads, and clients/NAME.crt + NAME.key for each browser or script.

export function certPaths (dir: string) {
  return {
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clients: join(dir, 'clients'),
    clientCert: (name: string) => join(dir, 'clients', `${name}.crt`),
    clientKey: (name: string) => join(dir, 'clients', `${name}.key`)
  }
}
