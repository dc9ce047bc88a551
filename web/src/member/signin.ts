// Signing in through WeChat's OAuth. The service gives the authorization
// URL and its state (signed, for this merchant); the page keeps the state
// for this tab and, when WeChat sends the browser back with code and state,
// logs in only if the state is the one it kept (the service checks it
// too). snsapi_base is silent; snsapi_userinfo (name and avatar) is asked
// for only when the member chooses to share them.
import { memberApi, type MemberSession, type MemberTokens } from '@/api/member'
import { toApiError } from '@/api/errors'

const stateKey = (mid: number) => `loyalty.member.${mid}.oauth-state`

/** What signIn found: ready to show the pages, on the way to WeChat, or a failure to show. */
export type SignIn = { kind: 'ready' } | { kind: 'redirecting' } | { kind: 'failed'; reason: 'state' | 'error'; error?: unknown }

/** cleanURL is the page's URL without WeChat's code and state. */
export function cleanURL(href: string): string {
  const u = new URL(href)
  u.searchParams.delete('code')
  u.searchParams.delete('state')
  u.hash = ''
  return u.toString()
}

/** startOAuth sends the browser to WeChat's authorization page. */
export async function startOAuth(s: MemberSession, scope: 'snsapi_base' | 'snsapi_userinfo' = 'snsapi_base'): Promise<void> {
  const r = await memberApi.GET('/api/h5/v1/{merchant_id}/oauth-url', {
    params: { path: s.path, query: { redirect_uri: cleanURL(location.href), scope } },
  })
  if (!r.response.ok || !r.data) throw toApiError(r.response.status, r.response.headers, r.error ?? null)
  sessionStorage.setItem(stateKey(s.merchantId), r.data.state)
  location.replace(r.data.url)
}

/** What WeChat sent the browser back with. */
export interface OAuthReturn {
  code: string
  state: string | null
}

/**
 * takeOAuthReturn reads WeChat's code and state from the address and takes
 * them out of it (a reload or a shared link must not carry a spent code).
 * It runs before the router reads the address.
 */
export function takeOAuthReturn(): OAuthReturn | null {
  const here = new URL(location.href)
  const code = here.searchParams.get('code')
  if (!code) return null
  const state = here.searchParams.get('state')
  here.searchParams.delete('code')
  here.searchParams.delete('state')
  history.replaceState(history.state, '', here.toString())
  return { code, state }
}

/** signIn finishes a sign-in WeChat sent the browser back from, or starts one when there are no tokens. */
export async function signIn(s: MemberSession, returned: OAuthReturn | null): Promise<SignIn> {
  if (returned) {
    const { code, state } = returned
    const kept = sessionStorage.getItem(stateKey(s.merchantId))
    sessionStorage.removeItem(stateKey(s.merchantId))
    if (!kept || kept !== state) return { kind: 'failed', reason: 'state' }
    // A page opened from a member's share link (?ref=) carries the
    // invitation through WeChat's redirect; the login records it.
    const ref = new URL(location.href).searchParams.get('ref')
    try {
      const r = await memberApi.POST('/api/h5/v1/{merchant_id}/login', {
        params: { path: s.path },
        body: ref && /^[A-Za-z0-9]{1,16}$/.test(ref) ? { code, state, ref } : { code, state },
      })
      if (!r.response.ok || !r.data) throw toApiError(r.response.status, r.response.headers, r.error ?? null)
      s.save(r.data as unknown as MemberTokens)
      return { kind: 'ready' }
    } catch (error) {
      return { kind: 'failed', reason: 'error', error }
    }
  }
  if (s.signedIn()) return { kind: 'ready' }
  try {
    await startOAuth(s)
    return { kind: 'redirecting' }
  } catch (error) {
    return { kind: 'failed', reason: 'error', error }
  }
}
