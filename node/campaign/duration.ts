import { z } from 'zod'

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Milliseconds in `"90s"`, `"10m"`, `"1.5h"`, `"7d"`; undefined for anything else. */
export function parseDuration (text: string): number | undefined {
  const m = DURATION.exec(text.trim())
  return m != null ? Math.round(Number(m[1]) * UNIT_MS[m[2]!]!) : undefined
}

/** `"90s"`, `"10m"`, `"1.5h"` or a number of milliseconds. */
export const DurationSchema = z.union([
  z.number().int().positive(),
  z.string().regex(DURATION).transform(text => parseDuration(text)!)
], { message: 'expected a duration such as "30s", "10m", "2h" or a number of milliseconds' })

/** `parseDuration`'s inverse: `120000` → `"2m"`, in the largest unit that divides it (`"1500ms"` when none does). */
export function formatDuration (ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit]! && ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`
  }
  return `${ms}ms`
}
