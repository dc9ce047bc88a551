// The page's one member session: the merchant from the URL, the tokens in
// localStorage. Signing out for good (no refresh works) starts WeChat's
// sign-in again.
import { MemberSession, merchantFromPath } from '@/api/member'
import { startOAuth } from './signin'

export const session = new MemberSession(merchantFromPath(location.pathname))
session.onSignedOut = () => {
  void startOAuth(session).catch(() => location.reload())
}

/** requestId is one per member action, reused if the same action is retried. */
export function requestId(): string {
  const b = new Uint8Array(16)
  crypto.getRandomValues(b)
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
}
