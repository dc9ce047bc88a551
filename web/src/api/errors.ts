// The API's one error shape, as a value the screens can show.

/** The closed set of codes the API answers with (components.schemas.Error). */
export type ApiErrorCode =
  | 'validation_failed'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'unprocessable'
  | 'too_many_requests'
  | 'unavailable'
  | 'method_not_allowed'
  | 'internal'
  | 'network' // no answer at all (offline, server down): panel-side only

/** ApiError is every failed call: the status, the API's code and message, and the fields it names. */
export class ApiError extends Error {
  readonly status: number
  readonly code: ApiErrorCode
  readonly fields: Record<string, string>
  readonly requestId?: string
  /** Seconds from Retry-After on 429 and 503, when given. */
  readonly retryAfter?: number

  constructor(init: {
    status: number
    code: ApiErrorCode
    message: string
    fields?: Record<string, string>
    requestId?: string
    retryAfter?: number
  }) {
    super(init.message)
    this.name = 'ApiError'
    this.status = init.status
    this.code = init.code
    this.fields = init.fields ?? {}
    this.requestId = init.requestId
    this.retryAfter = init.retryAfter
  }
}

const knownCodes = new Set<ApiErrorCode>([
  'validation_failed',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'unprocessable',
  'too_many_requests',
  'unavailable',
  'method_not_allowed',
  'internal',
])

function codeForStatus(status: number): ApiErrorCode {
  switch (status) {
    case 400:
      return 'validation_failed'
    case 401:
      return 'unauthenticated'
    case 403:
      return 'forbidden'
    case 404:
      return 'not_found'
    case 409:
      return 'conflict'
    case 422:
      return 'unprocessable'
    case 429:
      return 'too_many_requests'
    case 503:
      return 'unavailable'
    default:
      return 'internal'
  }
}

/** parseRetryAfter reads Retry-After in seconds (the API never sends a date). */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined
  const n = Number(value.trim())
  return Number.isInteger(n) && n >= 0 ? n : undefined
}

/**
 * toApiError turns a failed response and its parsed body into an ApiError.
 * A body that is not the API's shape (a proxy's HTML page) still gives an
 * error with the status's code, so no failure is ever silent.
 */
export function toApiError(status: number, headers: Headers, body: unknown): ApiError {
  const e = (body as { error?: { code?: string; message?: string; fields?: Record<string, string>; request_id?: string } } | null)
    ?.error
  const code = e?.code && knownCodes.has(e.code as ApiErrorCode) ? (e.code as ApiErrorCode) : codeForStatus(status)
  return new ApiError({
    status,
    code,
    message: e?.message ?? `HTTP ${status}`,
    fields: e?.fields,
    requestId: e?.request_id ?? headers.get('X-Request-Id') ?? undefined,
    retryAfter: parseRetryAfter(headers.get('Retry-After')),
  })
}

/** networkError is the error of a call that got no answer. */
export function networkError(cause: unknown): ApiError {
  return new ApiError({ status: 0, code: 'network', message: cause instanceof Error ? cause.message : String(cause) })
}
