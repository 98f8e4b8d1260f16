import type { z } from 'zod'

/**
 * A one-line account of what is wrong, naming each offending field:
 * `workload.model: expected string, received number; shards.total: too small`.
 */
export function summarizeIssues (error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map(issue => {
    const path = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)'
    return `${path}: ${issue.message}`
  })
  const more = error.issues.length - max
  return parts.join('; ') + (more > 0 ? `; and ${more} more` : '')
}
