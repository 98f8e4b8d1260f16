import { pino, type Logger } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { IdleWatcher, lookEveryMs, nextIdle, type Duties, type IdleClock } from '../../node/idle.ts'

const none: Duties = { tasks: 0, taken: 0, campaigns: 0, replicas: 0 }

function captured (): { log: Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  return { log: pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } }), lines }
}

describe('the idle decision', () => {
  const limit = 120_000
  const start: IdleClock = { since: 0, taken: 0 }

  it('leaves once nothing has been to do for the limit, counted from the start', () => {
    expect(nextIdle(start, none, 119_999, limit).leave).toBe(false)
    expect(nextIdle(start, none, 120_000, limit)).toEqual({ clock: start, leave: true })
  })

  it('any duty restarts the clock: a shard, a campaign coordinated here, a replica held', () => {
    for (const duty of [{ tasks: 1 }, { campaigns: 1 }, { replicas: 2 }]) {
      const busy = nextIdle(start, { ...none, ...duty }, 100_000, limit)
      expect(busy).toEqual({ clock: { since: 100_000, taken: 0 }, leave: false })
      // idle again: the limit counts from the last look that found the duty
      expect(nextIdle(busy.clock, none, 219_999, limit).leave).toBe(false)
      expect(nextIdle(busy.clock, none, 220_000, limit).leave).toBe(true)
    }
  })

  it('work that came and went between two looks restarts the clock too', () => {
    const seen = nextIdle(start, { ...none, taken: 3 }, 150_000, limit)
    expect(seen).toEqual({ clock: { since: 150_000, taken: 3 }, leave: false })
    expect(nextIdle(seen.clock, { ...none, taken: 3 }, 269_999, limit).leave).toBe(false)
    expect(nextIdle(seen.clock, { ...none, taken: 3 }, 270_000, limit).leave).toBe(true)
  })

  it('looks a few times within the limit, between a quarter second and five seconds apart', () => {
    expect(lookEveryMs(3000)).toBe(750)
    expect(lookEveryMs(120_000)).toBe(5000)
    expect(lookEveryMs(0)).toBe(250)
  })
})

describe('the idle watcher', () => {
  afterEach(() => { vi.useRealTimers() })

  it('leaves once, after the limit without duty, logging why; a duty on the way restarts the clock', async () => {
    vi.useFakeTimers({ now: 0 })
    const { log, lines } = captured()
    let duties: Duties = none
    const leave = vi.fn()
    const watcher = new IdleWatcher({ limitMs: 3000, duties: async () => duties, leave, log })
    watcher.start()
    // it looks every 750 ms: idle at 750 and 1500, a shard at 2250 and 3000
    await vi.advanceTimersByTimeAsync(2000)
    duties = { ...none, tasks: 1 }
    await vi.advanceTimersByTimeAsync(1000)
    duties = none
    // last seen busy at 3000: still here at 5999
    await vi.advanceTimersByTimeAsync(2999)
    expect(leave).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(leave).toHaveBeenCalledTimes(1)
    expect(leave).toHaveBeenCalledWith(3000)
    expect(lines.filter(l => l.msg === 'idle for 3s: draining and exiting')).toEqual([expect.objectContaining({ level: 30, idleForMs: 3000, exitWhenIdleMs: 3000 })])
    await vi.advanceTimersByTimeAsync(10_000)
    expect(leave).toHaveBeenCalledTimes(1)
  })

  it('counts a look that fails as busy, and stops looking when stopped', async () => {
    vi.useFakeTimers({ now: 0 })
    let fail = true
    const leave = vi.fn()
    const duties = vi.fn(async () => {
      if (fail) throw new Error('no answer from worker')
      return none
    })
    const watcher = new IdleWatcher({ limitMs: 1000, duties, leave, log: pino({ level: 'silent' }) })
    watcher.start()
    await vi.advanceTimersByTimeAsync(5000)
    expect(leave).not.toHaveBeenCalled()
    fail = false
    await vi.advanceTimersByTimeAsync(999)
    expect(leave).not.toHaveBeenCalled()
    watcher.stop()
    const looks = duties.mock.calls.length
    await vi.advanceTimersByTimeAsync(5000)
    expect(leave).not.toHaveBeenCalled()
    expect(duties.mock.calls.length).toBe(looks)
  })
})
