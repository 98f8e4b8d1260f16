import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { assign, type Demand } from '../../actors/coordinator/assign.ts'
import { missing, noPeerReason } from '../../actors/coordinator/match.ts'
import type { PeerView } from '../../actors/membership/membership.ts'
import { peerJson } from '../../node/api/routes.ts'
import { CapabilityProbe, capabilityHash } from '../../node/capabilities.ts'
import { UsageError } from '../../node/cli/errors.ts'
import { labelFlag } from '../../node/cli/label-flags.ts'
import { renderPeerTable } from '../../node/cli/format.ts'
import { silentLogger } from '../../node/logger.ts'
import type { Requirements } from '../../protocols/campaign/spec.ts'
import { CapabilityReportSchema, type CapabilityReport } from '../../protocols/membership/capabilities.ts'

const report = (labels?: Record<string, string>): CapabilityReport => ({
  probedAt: 1,
  durationMs: 1,
  host: { hostname: 'h', platform: 'linux', arch: 'x64', cpuModel: 'c', cpuVendor: 'v', cores: 2, physicalCores: 2, memoryBytes: 2 ** 32 },
  capabilities: { 'cpu.x86': { status: 'ok' } },
  ...(labels != null ? { labels } : {})
})

function peer (name: string, labels?: Record<string, string>): PeerView {
  return {
    peerId: `id-${name}`, name, state: 'alive', reason: 'heard alive', self: false, connected: true, multiaddrs: ['/ip4/10.0.0.7/tcp/4170'],
    slots: { total: 2, free: 2 }, lastSeenMs: 0, stateSince: 0, incarnation: 1, capabilities: report(labels)
  } as unknown as PeerView
}

const needs = (labels: Record<string, string>): Requirements => ({ capabilities: [], minMemoryBytes: 0, labels })

describe('zp-node --label', () => {
  it('collects KEY=VALUE pairs, values with : / and empty ones included', () => {
    let labels = labelFlag('bridge=slurm')
    labels = labelFlag('slurm.job=1234', labels)
    labels = labelFlag('gres=gpu:1/a', labels)
    labels = labelFlag('spare=', labels)
    expect(labels).toEqual({ bridge: 'slurm', 'slurm.job': '1234', gres: 'gpu:1/a', spare: '' })
    // the same pair twice is harmless
    expect(labelFlag('bridge=slurm', labels)).toEqual(labels)
  })

  it('refuses bad syntax naming the flag, the value and the form, and a key given twice with two values', () => {
    expect(() => labelFlag('bridge')).toThrow("--label 'bridge' has no '=': give it as KEY=VALUE, e.g. --label bridge=slurm")
    expect(() => labelFlag('Bridge=slurm')).toThrow(/^--label 'Bridge=slurm': the key 'Bridge' is not allowed \(label keys are lower case.*\); give it as KEY=VALUE/)
    expect(() => labelFlag('=slurm')).toThrow(/the key '' is not allowed/)
    expect(() => labelFlag('bridge=two words')).toThrow(/^--label 'bridge=two words': the value 'two words' is not allowed \(label values are letters/)
    expect(() => labelFlag('bridge=dask', { bridge: 'slurm' })).toThrow("--label bridge is given twice ('slurm' and 'dask'); give each key once")
    expect(() => labelFlag('bridge=a=b')).toThrow(/the value 'a=b' is not allowed/)
    // bad input on the command line: exit code 2
    expect(() => labelFlag('nope')).toThrow(UsageError)
  })
})

describe('labels in the capability report', () => {
  it('are optional on the wire, so a report from an older node still parses', () => {
    expect(CapabilityReportSchema.safeParse(report()).success).toBe(true)
    expect(CapabilityReportSchema.parse(report({ bridge: 'slurm' })).labels).toEqual({ bridge: 'slurm' })
    expect(CapabilityReportSchema.safeParse(report({ Bad: 'x' })).success).toBe(false)
  })

  it('are advertised with a fixed report, and change its hash (so peers fetch the new report)', () => {
    const sent: Array<[CapabilityReport, string]> = []
    const probe = new CapabilityProbe({
      probe: report(), extra: {}, labels: { bridge: 'slurm', 'slurm.job': '7' }, advertise: (r, h) => { sent.push([r, h]) }, signal: new AbortController().signal, log: silentLogger()
    })
    probe.start()
    probe.stop()
    expect(sent).toHaveLength(1)
    expect(sent[0]![0].labels).toEqual({ bridge: 'slurm', 'slurm.job': '7' })
    expect(sent[0]![1]).not.toBe(capabilityHash(report()))
    // the order labels were given in does not matter
    expect(capabilityHash(report({ 'slurm.job': '7', bridge: 'slurm' }))).toBe(sent[0]![1])
    expect(capabilityHash(report({ bridge: 'dask' }))).not.toBe(capabilityHash(report({ bridge: 'slurm' })))
  })

  it('with probing off there is no report to carry them: the node says so', () => {
    const lines: Array<Record<string, unknown>> = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    const advertise = vi.fn()
    const probe = new CapabilityProbe({ probe: false, extra: {}, labels: { bridge: 'slurm' }, advertise, signal: new AbortController().signal, log })
    probe.start()
    probe.stop()
    expect(advertise).not.toHaveBeenCalled()
    expect(lines).toEqual([expect.objectContaining({ level: 40, labels: { bridge: 'slurm' }, msg: expect.stringContaining('no labels') })])
  })

  it('a node without labels advertises a report without the field', () => {
    const sent: CapabilityReport[] = []
    const probe = new CapabilityProbe({ probe: report(), extra: {}, advertise: (r) => { sent.push(r) }, signal: new AbortController().signal, log: silentLogger() })
    probe.start()
    probe.stop()
    expect('labels' in sent[0]!).toBe(false)
  })
})

describe('campaigns that require labels', () => {
  it('a peer lacks each required label it does not carry, or carries with another value', () => {
    expect(missing(peer('plain'), needs({ bridge: 'slurm' }))).toEqual(['label bridge=slurm (has none)'])
    expect(missing(peer('dask', { bridge: 'dask' }), needs({ bridge: 'slurm', 'slurm.job': '7' })))
      .toEqual(['label bridge=slurm (has bridge=dask)', 'label slurm.job=7 (has none)'])
    expect(missing(peer('bridged', { bridge: 'slurm', 'slurm.job': '7', extra: 'x' }), needs({ bridge: 'slurm', 'slurm.job': '7' }))).toEqual([])
    expect(missing(peer('plain'), { capabilities: [], minMemoryBytes: 0 })).toEqual([])
  })

  it('go only to the labelled peer, and wait naming the missing label and the fix when none has it', () => {
    const demand: Demand = { id: 'c-1', priority: 'NORMAL', createdAt: 0, requires: needs({ bridge: 'slurm' }), retries: [], fresh: 4, inFlight: 0 }
    const { grants } = assign([demand], [peer('a'), peer('b', { bridge: 'dask' }), peer('c', { bridge: 'slurm' })], new Map(), 0, new Map())
    expect(grants.map(g => g.peerName)).toEqual(['c'])
    const { waiting } = assign([demand], [peer('a'), peer('b', { bridge: 'dask' })], new Map(), 0, new Map())
    expect(waiting.get('c-1')).toBe('no peer meets the requirements (label bridge=slurm): a lacks label bridge=slurm (has none); b lacks label bridge=slurm (has bridge=dask); ' +
      'start a node with --label bridge=slurm (zp-node start|join), or bring nodes up with zp bridge slurm up (they carry bridge=slurm)')
  })

  it('a label no bridge sets names only the flag', () => {
    expect(noPeerReason([peer('a')], needs({ site: 'lab-2', rack: '4' })))
      .toMatch(/\(label site=lab-2, label rack=4\): a lacks label site=lab-2 \(has none\), label rack=4 \(has none\); start a node with --label site=lab-2 --label rack=4 \(zp-node start\|join\)$/)
  })
})

describe('zp peers', () => {
  it('shows a LABELS column when a peer has labels, and --json carries them', () => {
    const peers = [peerJson(peer('a')), peerJson(peer('slurm-7-0', { bridge: 'slurm', 'slurm.job': '7' }))]
    expect(peers.map(p => p.labels)).toEqual([{}, { bridge: 'slurm', 'slurm.job': '7' }])
    const table = renderPeerTable(peers, 0)
    expect(table).toMatch(/│ LABELS +│/)
    expect(table).toMatch(/│ slurm-7-0 .*│ bridge=slurm, slurm\.job=7 +│/)
    expect(table).toMatch(/│ a +│.*│ - +│ 2\/2/)
  })

  it('keeps the plain table when no peer has labels', () => {
    expect(renderPeerTable([peerJson(peer('a'))], 0)).not.toContain('LABELS')
  })
})
