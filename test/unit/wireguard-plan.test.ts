import { describe, expect, it } from 'vitest'
import { addressProblem, parseCidr, type Cidr } from '../../bootstrap/wireguard/cidr.ts'
import { parseInventory, WireguardInputError } from '../../bootstrap/wireguard/inventory.ts'
import { generateKeyPair, isWireguardKey, publicKeyOf } from '../../bootstrap/wireguard/keys.ts'
import { renderEnv, renderWgQuick, type OverlayState } from '../../bootstrap/wireguard/render.ts'

const inventoryError = (text: string, flags = {}): string => {
  try {
    parseInventory(text, 'hosts.yaml', flags)
  } catch (err) {
    expect(err).toBeInstanceOf(WireguardInputError)
    return (err as Error).message
  }
  throw new Error('the inventory was accepted')
}

describe('overlay CIDR', () => {
  it('takes an IPv4 network and refuses host bits, a too small prefix and non-IPv4 text, naming the fix', () => {
    expect(parseCidr('10.77.0.0/24')).toEqual({ network: 0x0a4d0000, prefix: 24 })
    expect(parseCidr('10.77.0.5/24')).toBe('has host bits set; the network is 10.77.0.0/24')
    expect(parseCidr('10.77.0.0/31')).toMatch(/no room for two hosts; use a prefix of 30 or less/)
    expect(parseCidr('fd00::/64')).toMatch(/not an IPv4 network/)
    expect(parseCidr('10.77.0.0/33')).toMatch(/not an IPv4 network/)
  })

  it('refuses the network and broadcast addresses and addresses outside it', () => {
    const cidr = parseCidr('10.77.0.0/24') as Cidr
    expect(addressProblem('10.77.0.1', cidr)).toBeUndefined()
    expect(addressProblem('10.77.0.254', cidr)).toBeUndefined()
    expect(addressProblem('10.77.0.0', cidr)).toBe('10.77.0.0 is the network address of 10.77.0.0/24; use 10.77.0.1 to 10.77.0.254')
    expect(addressProblem('10.77.0.255', cidr)).toBe('10.77.0.255 is the broadcast address of 10.77.0.0/24; use 10.77.0.1 to 10.77.0.254')
    expect(addressProblem('10.78.0.1', cidr)).toMatch(/outside the overlay 10.77.0.0\/24/)
    expect(addressProblem('10.77.0.300', cidr)).toMatch(/not an IPv4 address/)
  })
})

describe('inventory', () => {
  it('assigns the lowest free addresses in order, skipping the ones given, and applies defaults and flags', () => {
    const inv = parseInventory([
      'hosts:',
      '  - { name: a, endpoint: 203.0.113.1:51820 }',
      '  - { name: b, endpoint: "[2001:db8::2]:51820", address: 10.77.0.1, role: bootstrap }',
      '  - { name: c, endpoint: c.lab.example:51999 }',
      '  - { name: d, endpoint: 203.0.113.4:51820, address: 10.77.0.3 }',
      '  - { name: e, endpoint: 203.0.113.5:51820 }'
    ].join('\n'), 'hosts.yaml')
    expect(inv.hosts.map((h) => [h.name, h.address, h.role])).toEqual([
      ['a', '10.77.0.2', undefined], ['b', '10.77.0.1', 'bootstrap'], ['c', '10.77.0.4', undefined], ['d', '10.77.0.3', undefined], ['e', '10.77.0.5', undefined]
    ])
    expect(inv).toMatchObject({ cidr: '10.77.0.0/24', port: 51820, interface: 'zp0', meshPort: 4170, pskFile: '/etc/zp-node/mesh.key' })
    const flagged = parseInventory('cidr: 10.1.0.0/16\nport: 1000\nhosts: [{ name: a, endpoint: "h:1" }]', 'x', { cidr: '192.168.9.0/29', port: 2000 })
    expect(flagged).toMatchObject({ cidr: '192.168.9.0/29', port: 2000, hosts: [{ name: 'a', address: '192.168.9.1', role: 'bootstrap' }] })
  })

  it('makes the first host the bootstrap when none is marked', () => {
    const inv = parseInventory('hosts: [{ name: a, endpoint: "h1:1" }, { name: b, endpoint: "h2:1" }]', 'x')
    expect(inv.hosts.map((h) => h.role)).toEqual(['bootstrap', undefined])
  })

  it('refuses duplicate names, addresses and endpoints, naming both hosts', () => {
    const msg = inventoryError([
      'hosts:',
      '  - { name: a, endpoint: 203.0.113.1:51820, address: 10.77.0.9 }',
      '  - { name: b, endpoint: 203.0.113.1:51820, address: 10.77.0.9 }',
      '  - { name: a, endpoint: 203.0.113.3:51820 }'
    ].join('\n'))
    expect(msg).toContain("host 'b' endpoint: 203.0.113.1:51820 is also the endpoint of 'a'; each host needs its own")
    expect(msg).toContain("host 'b' address: 10.77.0.9 is also the address of 'a'; each host needs its own")
    expect(msg).toContain("host 'a' name: a is also the name of another host")
  })

  it('refuses an address outside the CIDR or on its network/broadcast address, and a CIDR too small', () => {
    expect(inventoryError('hosts: [{ name: a, endpoint: "h:1", address: 10.9.0.1 }]')).toContain("host 'a' address: 10.9.0.1 is outside the overlay 10.77.0.0/24; use 10.77.0.1 to 10.77.0.254 or another --cidr")
    expect(inventoryError('hosts: [{ name: a, endpoint: "h:1", address: 10.77.0.255 }]')).toContain("host 'a' address: 10.77.0.255 is the broadcast address")
    const three = 'hosts: [{ name: a, endpoint: "h1:1" }, { name: b, endpoint: "h2:1" }, { name: c, endpoint: "h3:1" }]'
    expect(inventoryError(three, { cidr: '10.0.0.0/30' })).toContain('cidr 10.0.0.0/30 has room for 2 hosts, the inventory lists 3; use a larger overlay')
    expect(inventoryError(three, { port: 70000 })).toBe('--port 70000 is not a UDP port (1-65535)')
    expect(inventoryError(three, { cidr: '10.0.0.1/24' })).toBe('hosts.yaml: cidr 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24')
  })

  it('names the host and field of a schema problem', () => {
    const msg = inventoryError([
      'hosts:',
      '  - { name: ok, endpoint: "h:1" }',
      '  - { name: GPU_1, endpoint: "h:2" }',
      '  - { name: c, endpoint: "no-port", role: worker }'
    ].join('\n'))
    expect(msg).toContain("host 'GPU_1' (hosts[1]) name: names are 1-63 lower case letters, digits and -")
    expect(msg).toContain("host 'c' (hosts[2]) endpoint: must be host:port")
    expect(msg).toContain("host 'c' (hosts[2]) role: the only role is bootstrap")
    expect(inventoryError('hosts: []')).toContain('hosts: list at least one host')
    expect(inventoryError('hosts: [{ name: a, endpoint: "h:1", adress: 10.77.0.2 }]')).toMatch(/host 'a' \(hosts\[0\]\).*adress/)
    expect(inventoryError('hosts: [')).toMatch(/^hosts.yaml: not valid YAML/)
  })
})

const STATE: OverlayState = {
  version: 1,
  cidr: '10.77.0.0/24',
  port: 51820,
  interface: 'zp0',
  meshPort: 4170,
  pskFile: '/etc/zp-node/mesh.key',
  presharedKeys: true,
  hosts: [
    { name: 'lab-a', endpoint: '203.0.113.1:51820', address: '10.77.0.1', role: 'bootstrap', publicKey: 'PUB-A' },
    { name: 'gpu-1', endpoint: 'gpu-1.lab.example:51820', address: '10.77.0.2', publicKey: 'PUB-G' },
    { name: 'lab-b', endpoint: '[2001:db8::3]:51820', address: '10.77.0.3', role: 'bootstrap', publicKey: 'PUB-B' }
  ]
}

describe('rendered files', () => {
  it('writes a wg-quick config with a peer per other host', () => {
    const text = renderWgQuick(STATE, 'gpu-1', { privateKey: 'PRIV-G', presharedKeys: new Map([['lab-a', 'PSK-AG'], ['lab-b', 'PSK-BG']]) })
    expect(text).toBe(`# zp0 on gpu-1, written by zp-node wireguard: change the set with add-host / remove-host, not by hand
[Interface]
PrivateKey = PRIV-G
Address = 10.77.0.2/24
ListenPort = 51820

[Peer]
# lab-a
PublicKey = PUB-A
PresharedKey = PSK-AG
AllowedIPs = 10.77.0.1/32
Endpoint = 203.0.113.1:51820
PersistentKeepalive = 25

[Peer]
# lab-b
PublicKey = PUB-B
PresharedKey = PSK-BG
AllowedIPs = 10.77.0.3/32
Endpoint = [2001:db8::3]:51820
PersistentKeepalive = 25
`)
    const plain = renderWgQuick({ ...STATE, presharedKeys: false }, 'lab-a', { privateKey: 'PRIV-A', presharedKeys: new Map() })
    expect(plain).not.toContain('PresharedKey')
    expect(plain.match(/\[Peer\]/g)).toHaveLength(2)
  })

  it('writes the zp-node environment: mesh on the overlay address, every bootstrap host, the PSK file', () => {
    expect(renderEnv(STATE, 'gpu-1')).toBe(`# zp-node on gpu-1 in the zp0 overlay, written by zp-node wireguard. Start it with:
#   zp-node join $ZP_BOOTSTRAP --listen $ZP_LISTEN --announce $ZP_ANNOUNCE --psk $ZP_PSK_FILE --name $ZP_NAME
ZP_NAME=gpu-1
ZP_LISTEN=/ip4/10.77.0.2/tcp/4170
ZP_ANNOUNCE=/ip4/10.77.0.2/tcp/4170
ZP_BOOTSTRAP="10.77.0.1:4170 10.77.0.3:4170"
ZP_PSK_FILE=/etc/zp-node/mesh.key
# the same for deploy/systemd/zp-node.service (zp-node install-service), which reads the key through its
# LoadCredential=psk:/etc/zp-node/mesh.key line (enable it):
ZP_COMMAND="join 10.77.0.1:4170 10.77.0.3:4170"
ZP_ARGS="--listen /ip4/10.77.0.2/tcp/4170 --announce /ip4/10.77.0.2/tcp/4170 --psk /run/credentials/zp-node.service/psk --name gpu-1"
`)
    // a bootstrap host lists itself too: the same list everywhere, and join skips its own address
    expect(renderEnv(STATE, 'lab-a')).toContain('ZP_BOOTSTRAP="10.77.0.1:4170 10.77.0.3:4170"')
  })
})

describe('WireGuard keys', () => {
  it('derives the RFC 7748 public key from its private key, in base64 as wg pubkey prints it', () => {
    const alice = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64')
    expect(publicKeyOf(alice)).toBe(Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64'))
  })

  it('generates clamped 32-byte private keys, as wg genkey does, with their public key', () => {
    for (let i = 0; i < 20; i++) {
      const { privateKey, publicKey } = generateKeyPair()
      expect(isWireguardKey(privateKey) && isWireguardKey(publicKey)).toBe(true)
      const raw = Buffer.from(privateKey, 'base64')
      expect([raw[0]! & 7, raw[31]! & 0xc0]).toEqual([0, 0x40])
      expect(publicKeyOf(privateKey)).toBe(publicKey)
    }
  })
})
