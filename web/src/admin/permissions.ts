// What the signed-in person may do: the permissions GET /me returns.
// Screens hide what is not allowed; the API refuses it anyway.
import type { components } from '@/api/schema'

export type Permission = components['schemas']['Permission']
export type Role = components['schemas']['Role']

/** A route's requirement: one permission, or any of several. */
export type Requirement = Permission | Permission[] | undefined

/** allows says whether the permissions meet a requirement. */
export function allows(have: readonly Permission[], need: Requirement): boolean {
  if (!need) return true
  const list = Array.isArray(need) ? need : [need]
  return list.some((p) => have.includes(p))
}
