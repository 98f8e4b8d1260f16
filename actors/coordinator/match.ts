import { ENGINES } from '../../protocols/bridge/schema.ts'
import type { Requirements } from '../../protocols/campaign/spec.ts'
import type { PeerView } from '../membership/membership.ts'

/** What a peer lacks for a campaign; empty when it can run it. */
export function missing (peer: PeerView, requires: Requirements): string[] {
  const caps = peer.capabilities
  if (caps == null) return ['(capabilities not probed yet)']
  const lacks = requires.capabilities.filter(key => caps.capabilities[key]?.status !== 'ok')
  if (caps.host.memoryBytes < requires.minMemoryBytes) {
    lacks.push(`${(requires.minMemoryBytes / 2 ** 30).toFixed(1)} GB memory (has ${(caps.host.memoryBytes / 2 ** 30).toFixed(1)})`)
  }
  for (const [key, value] of Object.entries(requires.labels ?? {})) {
    const has = caps.labels?.[key]
    if (has !== value) lacks.push(`label ${key}=${value} (has ${has == null ? 'none' : `${key}=${has}`})`)
  }
  return lacks
}

/** Can this peer take work at all: alive, and not draining. */
export function canWork (peer: PeerView): boolean {
  return peer.state === 'alive' && peer.slots.total > 0
}

/** Why no peer can run a campaign, in a sentence for `zp status`. */
export function noPeerReason (peers: PeerView[], requires: Requirements): string {
  const working = peers.filter(canWork)
  if (working.length === 0) return 'no peer is alive and taking work'
  const shown = working.slice(0, 4).map(p => `${p.name} lacks ${missing(p, requires).join(', ')}`)
  const more = working.length > 4 ? `; and ${working.length - 4} more` : ''
  const labels = Object.entries(requires.labels ?? {}).map(([key, value]) => `${key}=${value}`)
  const wanted = [...requires.capabilities, ...(requires.minMemoryBytes > 0 ? [`${(requires.minMemoryBytes / 2 ** 30).toFixed(1)} GB memory`] : []), ...labels.map(l => `label ${l}`)]
  return `no peer meets the requirements (${wanted.join(', ')}): ${shown.join('; ')}${more}${execFix(requires)}${labelFix(requires, labels)}`
}

function execFix (requires: Requirements): string {
  const exec = requires.capabilities.filter(c => c.startsWith('exec.')).map(c => c.slice('exec.'.length))
  if (exec.length === 0) return ''
  return `; an exec campaign runs only on nodes whose --exec-config FILE defines the template${exec.length > 1 ? 's' : ''} ${exec.join(', ')} (see examples/exec)`
}

/** Labels come from the flags a node was started with, or from the bridge that started it. */
function labelFix (requires: Requirements, labels: string[]): string {
  if (labels.length === 0) return ''
  const engine = ENGINES.find(e => e === requires.labels?.bridge)
  const bridge = engine != null ? `, or bring nodes up with zp bridge ${engine} up (they carry bridge=${engine})` : ''
  return `; start a node with ${labels.map(l => `--label ${l}`).join(' ')} (zp-node start|join)${bridge}`
}
