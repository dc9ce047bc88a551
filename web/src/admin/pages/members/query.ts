// The members list's filters <-> the URL query and the API's parameters.
// Pure, so the mapping is unit-tested.
import type { LocationQuery, LocationQueryRaw } from 'vue-router'

export interface MemberFilters {
  q: string
  follow_status: string
  stage: string
  tag: number[]
  tier: number | null
  channel: string
  birthday_month: number | null
}

export const emptyFilters = (): MemberFilters => ({ q: '', follow_status: '', stage: '', tag: [], tier: null, channel: '', birthday_month: null })

const one = (v: LocationQuery[string]): string => (Array.isArray(v) ? (v[0] ?? '') : (v ?? '')) as string
const posInt = (s: string): number | null => (/^[1-9]\d{0,17}$/.test(s) ? Number(s) : null)

/** fromQuery reads filters from the URL, dropping what is malformed. */
export function fromQuery(q: LocationQuery): MemberFilters {
  const tags = (Array.isArray(q.tag) ? q.tag : q.tag ? [q.tag] : []).map((x) => posInt(String(x))).filter((x): x is number => x !== null)
  const month = posInt(one(q.birthday_month))
  return {
    q: one(q.q).trim(),
    follow_status: ['following', 'unfollowed', 'none'].includes(one(q.follow_status)) ? one(q.follow_status) : '',
    stage: one(q.stage),
    tag: [...new Set(tags)].slice(0, 5),
    tier: posInt(one(q.tier)),
    channel: one(q.channel).trim(),
    birthday_month: month !== null && month <= 12 ? month : null,
  }
}

/** toQuery writes filters to the URL, leaving out the empty ones. */
export function toQuery(f: MemberFilters): LocationQueryRaw {
  const out: LocationQueryRaw = {}
  if (f.q.trim()) out.q = f.q.trim()
  if (f.follow_status) out.follow_status = f.follow_status
  if (f.stage) out.stage = f.stage
  if (f.tag.length) out.tag = f.tag.map(String)
  if (f.tier) out.tier = String(f.tier)
  if (f.channel.trim()) out.channel = f.channel.trim()
  if (f.birthday_month) out.birthday_month = String(f.birthday_month)
  return out
}

/** toApiParams are the list's (and the export's) query parameters; the API refuses empty values. */
export function toApiParams(f: MemberFilters): Record<string, string | number | number[]> {
  const out: Record<string, string | number | number[]> = {}
  if (f.q.trim()) out.q = f.q.trim()
  if (f.follow_status) out.follow_status = f.follow_status
  if (f.stage) out.stage = f.stage
  if (f.tag.length) out.tag = f.tag
  if (f.tier) out.tier = f.tier
  if (f.channel.trim()) out.channel = f.channel.trim()
  if (f.birthday_month) out.birthday_month = f.birthday_month
  return out
}

/** toSearchParams is toApiParams as a URL query string (tag repeated). */
export function toSearchParams(f: MemberFilters): URLSearchParams {
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(toApiParams(f))) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, String(x)))
    else p.set(k, String(v))
  }
  return p
}

/** isFiltered says whether any filter is set (for the empty state's words). */
export function isFiltered(f: MemberFilters): boolean {
  return Object.keys(toApiParams(f)).length > 0
}
