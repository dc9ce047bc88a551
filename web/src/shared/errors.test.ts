import { describe, expect, it } from 'vitest'
import { createPanelI18n } from './i18n'
import enMessages from '@/locales/en.json'
import { describeError, errorText, loginMessage } from './errors'
import { ApiError, networkError, parseRetryAfter, toApiError } from '@/api/errors'

const zh = createPanelI18n('zh-CN').global.t as (k: string, n?: Record<string, unknown>) => string
const en = createPanelI18n('en', { en: enMessages }).global.t as (k: string, n?: Record<string, unknown>) => string

const headers = (h: Record<string, string> = {}) => new Headers(h)

describe('toApiError', () => {
  it('reads the API error shape', () => {
    const e = toApiError(400, headers(), {
      error: { code: 'validation_failed', message: 'some fields are invalid', fields: { phone: 'must be 11 digits' }, request_id: 'r1' },
    })
    expect(e).toBeInstanceOf(ApiError)
    expect(e.code).toBe('validation_failed')
    expect(e.fields).toEqual({ phone: 'must be 11 digits' })
    expect(e.requestId).toBe('r1')
  })
  it('falls back on the status when the body is not the API shape', () => {
    const e = toApiError(502, headers({ 'X-Request-Id': 'gw' }), '<html>Bad gateway</html>')
    expect(e.code).toBe('internal')
    expect(e.message).toBe('HTTP 502')
    expect(e.requestId).toBe('gw')
    expect(toApiError(404, headers(), null).code).toBe('not_found')
    expect(toApiError(409, headers(), { error: { code: 'something_new', message: 'x' } }).code).toBe('conflict')
  })
  it('reads Retry-After in seconds', () => {
    expect(toApiError(429, headers({ 'Retry-After': '8' }), null).retryAfter).toBe(8)
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT')).toBeUndefined()
    expect(parseRetryAfter(null)).toBeUndefined()
  })
})

describe('describeError', () => {
  it('says what happened in Chinese, keeping the server message and the request id', () => {
    const e = toApiError(422, headers(), { error: { code: 'unprocessable', message: 'not enough points', request_id: 'abc' } })
    expect(describeError(e, zh)).toEqual({ summary: '业务规则不允许这个操作。', detail: 'not enough points', fields: {}, requestId: 'abc' })
    expect(errorText(e, zh)).toBe('业务规则不允许这个操作。 服务器说明：not enough points')
  })
  it('names bad fields', () => {
    const e = toApiError(400, headers(), { error: { code: 'validation_failed', message: 'x', fields: { amount_fen: 'must be at least 1' } } })
    expect(errorText(e, en)).toBe('Some fields are invalid; see the marked fields. amount_fen: must be at least 1')
  })
  it('says how long to wait on 429 and 503', () => {
    const e = toApiError(429, headers({ 'Retry-After': '30' }), { error: { code: 'too_many_requests', message: 'slow down' } })
    expect(describeError(e, zh).summary).toBe('操作太频繁，请稍后再试。请在 30 秒后再试。')
    const busy = toApiError(503, headers({ 'Retry-After': '5' }), { error: { code: 'unavailable', message: 'busy' } })
    expect(describeError(busy, en).summary).toBe('The service is busy; please try again later.Try again in 5 seconds.')
  })
  it('says the server cannot be reached, and shows unexpected errors', () => {
    expect(describeError(networkError(new TypeError('Failed to fetch')), zh).summary).toBe('无法连接到服务器，请检查网络后重试。')
    expect(describeError(new Error('boom'), en)).toMatchObject({ summary: expect.stringContaining('The server failed'), detail: 'boom' })
  })
})

describe('loginMessage', () => {
  it('tells a wrong password from a lock and a busy server', () => {
    expect(loginMessage(toApiError(401, headers(), { error: { code: 'unauthenticated', message: 'invalid username or password' } }), zh)).toBe(
      '用户名或密码不正确。',
    )
    expect(loginMessage(toApiError(429, headers({ 'Retry-After': '4' }), { error: { code: 'too_many_requests', message: 'x' } }), zh)).toBe(
      '尝试次数过多，账号已暂时锁定，请在 4 秒后再试。',
    )
    expect(loginMessage(toApiError(503, headers({ 'Retry-After': '2' }), { error: { code: 'unavailable', message: 'x' } }), en)).toBe(
      'The server is busy. Try again in 2 seconds.',
    )
  })
})
