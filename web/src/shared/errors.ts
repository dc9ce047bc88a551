// API errors → what the person reads. The code picks a localised sentence;
// the API's own message, the fields it names and the request id are kept
// beside it, so nothing the server said is swallowed.
import { ApiError } from '@/api/errors'

type Translate = (key: string, named?: Record<string, unknown>) => string

/** What a screen shows for a failure. */
export interface ShownError {
  /** The localised sentence. */
  summary: string
  /** The server's message (English), when it says more than the summary. */
  detail?: string
  /** Bad fields by name (the API's JSON paths) → the API's reason. */
  fields: Record<string, string>
  requestId?: string
}

/**
 * describeError turns any thrown value into what the person should read.
 * Throttling (429) and busy (503) answers say how long to wait.
 */
export function describeError(err: unknown, t: Translate): ShownError {
  if (!(err instanceof ApiError)) {
    return { summary: t('errors.codes.internal'), detail: err instanceof Error ? err.message : String(err), fields: {} }
  }
  let summary = t(`errors.codes.${err.code}`)
  if ((err.code === 'too_many_requests' || err.code === 'unavailable') && err.retryAfter !== undefined) {
    summary = `${summary}${t('errors.retryIn', { seconds: err.retryAfter })}`
  }
  const detail = err.code === 'network' || !err.message ? undefined : err.message
  return { summary, detail, fields: err.fields, requestId: err.requestId }
}

/** errorText is describeError in one line, for toasts. */
export function errorText(err: unknown, t: Translate): string {
  const e = describeError(err, t)
  const parts = [e.summary]
  const fields = Object.entries(e.fields)
  if (fields.length) parts.push(fields.map(([k, v]) => `${k}: ${v}`).join('; '))
  else if (e.detail) parts.push(t('errors.serverSays', { message: e.detail }))
  return parts.join(' ')
}

/**
 * loginMessage says why a login failed: a wrong password, a lock with its
 * wait (429 + Retry-After), a busy server (503 + Retry-After), or anything
 * else as usual.
 */
export function loginMessage(err: unknown, t: Translate): string {
  if (err instanceof ApiError) {
    if (err.status === 401) return t('login.invalid')
    if (err.status === 429) return t('login.locked', { seconds: err.retryAfter ?? 60 })
    if (err.status === 503 && err.retryAfter !== undefined) return t('login.busy', { seconds: err.retryAfter })
  }
  return errorText(err, t)
}
