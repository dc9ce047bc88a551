// The member centre's way to the API: the same client typed from
// docs/openapi.yaml, with the member's tokens. An access token lasts two
// hours; before it runs out (or when a call answers 401) the refresh token
// gets the next pair, once, shared by every call waiting for it. When no
// refresh works the member signs in again through WeChat (onSignedOut).
import createClient from 'openapi-fetch'
import type { paths } from './schema'
import { networkError, toApiError } from './errors'

export type { components } from './schema'

/** The member's tokens as the login and the refresh answer them. */
export interface MemberTokens {
  token: string
  expires_at: string
  refresh_token: string
  refresh_expires_at: string
}

type Result<T> = { data?: T; error?: unknown; response: Response }

/** merchantFromPath reads the merchant from /m/<merchant_id>/...; 0 when the URL has none. */
export function merchantFromPath(pathname: string): number {
  const m = /^\/m\/([1-9]\d{0,19})(\/|$)/.exec(pathname)
  return m ? Number(m[1]) : 0
}

/** The typed client; every page calls it through MemberSession.call. */
export const memberApi = createClient<paths>({ baseUrl: '' })

/** A refresh this long before the access token's expiry. */
const EARLY_MS = 60_000

/** MemberSession keeps one member's tokens for one merchant (localStorage). */
export class MemberSession {
  readonly merchantId: number
  private refreshing: Promise<boolean> | null = null
  /** Called when the tokens are gone for good: sign in again. */
  onSignedOut: () => void = () => {}

  constructor(merchantId: number, private readonly store: Storage = localStorage) {
    this.merchantId = merchantId
  }

  private get key() {
    return `loyalty.member.${this.merchantId}`
  }

  tokens(): MemberTokens | null {
    try {
      const raw = this.store.getItem(this.key)
      return raw ? (JSON.parse(raw) as MemberTokens) : null
    } catch {
      return null
    }
  }

  save(t: MemberTokens | null): void {
    if (t) this.store.setItem(this.key, JSON.stringify(t))
    else this.store.removeItem(this.key)
  }

  /** signedIn: a refresh token that has not expired is kept. */
  signedIn(now = Date.now()): boolean {
    const t = this.tokens()
    return !!t && Date.parse(t.refresh_expires_at) > now
  }

  /** refresh spends the refresh token for a new pair; false when it is refused. */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        const t = this.tokens()
        if (!t) return false
        try {
          const r = await memberApi.POST('/api/member/v1/{merchant_id}/refresh', {
            params: { path: { merchant_id: this.merchantId } },
            body: { refresh_token: t.refresh_token },
          })
          if (r.response.ok && r.data) {
            this.save(r.data as MemberTokens)
            return true
          }
          // A refused refresh token is spent or revoked: only a new sign-in helps.
          if (r.response.status === 400 || r.response.status === 401) this.save(null)
          return false
        } catch {
          return false // offline: keep the tokens for the next try
        } finally {
          this.refreshing = null
        }
      })()
    }
    return this.refreshing
  }

  private authHeader(): Record<string, string> {
    const t = this.tokens()
    return t ? { Authorization: `Bearer ${t.token}` } : {}
  }

  /**
   * call runs one API call with the member's token (fresh), retrying once
   * after a refresh when it answers 401, and returns its data or throws
   * its ApiError.
   */
  async call<T>(fn: (headers: Record<string, string>) => Promise<Result<T>>): Promise<T> {
    const t = this.tokens()
    if (t && Date.parse(t.expires_at) - EARLY_MS < Date.now()) await this.refresh()
    let r: Result<T>
    try {
      r = await fn(this.authHeader())
      if (r.response.status === 401 && (await this.refresh())) r = await fn(this.authHeader())
    } catch (err) {
      throw networkError(err)
    }
    if (!r.response.ok) {
      if (r.response.status === 401) {
        this.save(null)
        this.onSignedOut()
      }
      throw toApiError(r.response.status, r.response.headers, r.error ?? null)
    }
    return r.data as T
  }

  /** path is the merchant path parameter every member route takes. */
  get path() {
    return { merchant_id: this.merchantId }
  }
}
