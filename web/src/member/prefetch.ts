// The home page's calls, sent before the app is built: on a slow phone,
// building and mounting the app takes long enough that the card would
// otherwise wait for it before even asking for the member code. Pages take
// a call's answer from here once (takeEarly), or make the call themselves.
import { memberApi } from '@/api/member'
import { session } from './session'

const early = new Map<string, Promise<unknown>>()

export const homeCalls = {
  memberCode: () =>
    session.call((headers) => memberApi.GET('/api/member/v1/{merchant_id}/member-code', { params: { path: session.path }, headers })),
  points: () => session.call((headers) => memberApi.GET('/api/member/v1/{merchant_id}/points', { params: { path: session.path }, headers })),
  tier: () => session.call((headers) => memberApi.GET('/api/member/v1/{merchant_id}/tier', { params: { path: session.path }, headers })),
}

/** prefetchHome sends the home page's calls when the member opens it signed in. */
export function prefetchHome(): void {
  const home = `/m/${session.merchantId}/`
  if (!session.merchantId || location.pathname !== home || !session.signedIn()) return
  for (const [name, call] of Object.entries(homeCalls)) {
    const p = call()
    p.catch(() => {}) // the page that takes it reports a failure
    early.set(name, p)
  }
}

/** takeEarly returns the early answer of a home call (once), else makes the call. */
export function takeEarly<K extends keyof typeof homeCalls>(name: K): ReturnType<(typeof homeCalls)[K]> {
  const p = early.get(name)
  early.delete(name)
  return (p ?? homeCalls[name]()) as ReturnType<(typeof homeCalls)[K]>
}
