import { describe, expect, it } from 'vitest'
import { checkLivenessFlags } from '../../node/cli/liveness-flags.ts'

describe('zp-node liveness flags', () => {
  it('accepts the defaults and timings where each wait is longer than the one before', () => {
    expect(() => { checkLivenessFlags({}) }).not.toThrow()
    expect(() => { checkLivenessFlags({ heartbeatMs: 300, suspectAfterMs: 2000, deadAfterMs: 4000 }) }).not.toThrow()
    expect(() => { checkLivenessFlags({ heartbeatMs: 2000 }) }).not.toThrow()
  })

  it('refuses --suspect-after-ms at or below --heartbeat-ms, naming both flags and the fix', () => {
    const refused = (flags: Parameters<typeof checkLivenessFlags>[0]): Error => {
      try {
        checkLivenessFlags(flags)
      } catch (err) {
        return err as Error
      }
      throw new Error('expected a refusal')
    }
    const below = refused({ heartbeatMs: 1000, suspectAfterMs: 500 })
    expect(below.name).toBe('UsageError')
    expect(below.message).toMatch(/^--suspect-after-ms 500 must be above --heartbeat-ms 1000: .*SUSPECT between two heartbeats; set --suspect-after-ms .* \(e\.g\. 4000\) or lower --heartbeat-ms/)
    expect(refused({ heartbeatMs: 1000, suspectAfterMs: 1000 }).message).toMatch(/must be above/)
    // a default it is compared with is named as one
    expect(refused({ heartbeatMs: 5000 }).message).toMatch(/^--suspect-after-ms \(default 4000\) must be above --heartbeat-ms 5000/)
  })

  it('refuses --dead-after-ms at or below --suspect-after-ms', () => {
    expect(() => { checkLivenessFlags({ deadAfterMs: 3000 }) })
      .toThrow(/^--dead-after-ms 3000 must be above --suspect-after-ms \(default 4000\): peers would go DEAD without first being SUSPECT; set --dead-after-ms higher \(e\.g\. 8000\)/)
    expect(() => { checkLivenessFlags({ suspectAfterMs: 9000 }) }).toThrow(/--dead-after-ms \(default 8000\) must be above --suspect-after-ms 9000/)
  })
})
