/**
 * Why the node could not listen, in one line with the fix: libp2p's message
 * lists each failed address with a stack; what people need is which address
 * and whether it is not on this machine (an overlay interface that is not
 * up) or taken.
 */
export function listenFailure (listen: string[], said: string): string {
  const where = listen.join(', ')
  // libp2p lists each address that failed: "/ip4/10.77.0.9/tcp/4170: Error: listen EADDRNOTAVAIL: …"
  const missing = [...said.matchAll(/\/ip[46]\/([^/\s]+)\/tcp\/\d+: Error: listen EADDRNOTAVAIL/g)].map(m => m[1]!)
  if (/EADDRNOTAVAIL/.test(said)) {
    return `cannot listen on ${where}: ${missing.length > 0 ? missing.join(', ') : 'the address'} is not an address of this machine; if it is a WireGuard overlay address, the interface is not up (wg-quick up zp0, or start zp-node after wg-quick@zp0), else pass --listen with one of this machine's addresses (ip -brief address)`
  }
  if (/EADDRINUSE/.test(said)) return `cannot listen on ${where}: the port is in use (another zp-node on this machine?); pass --listen with another port (tcp/0 picks a free one)`
  if (/EACCES/.test(said)) return `cannot listen on ${where}: permission denied (ports below 1024 need privileges); pass --listen with a port of 1024 or above`
  return `cannot listen on ${where}: ${said.split('\n')[0]}; pass --listen with a free address of this machine (tcp/0 picks a free port)`
}
