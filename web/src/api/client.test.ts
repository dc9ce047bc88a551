import { describe, expect, it, vi } from 'vitest'
import { ApiError, setUnauthorizedHandler, unwrap } from './client'

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } })

describe('unwrap', () => {
  it('returns the data of a successful call', async () => {
    await expect(unwrap(Promise.resolve({ data: { ok: 1 }, response: json(200, { ok: 1 }) }))).resolves.toEqual({ ok: 1 })
  })

  it('throws the API error with its code, fields and Retry-After', async () => {
    const body = { error: { code: 'too_many_requests', message: 'slow down', request_id: 'r9' } }
    const err = await unwrap(Promise.resolve({ error: body, response: json(429, body, { 'Retry-After': '12' }) })).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err).toMatchObject({ status: 429, code: 'too_many_requests', message: 'slow down', requestId: 'r9', retryAfter: 12 })
  })

  it('turns a call that got no answer into a network error', async () => {
    const err = await unwrap(Promise.reject(new TypeError('Failed to fetch'))).catch((e) => e)
    expect(err).toMatchObject({ status: 0, code: 'network' })
  })

  it('ends the session on a 401, but not on a failed login', async () => {
    const ended = vi.fn()
    setUnauthorizedHandler(ended)
    const body = { error: { code: 'unauthenticated', message: 'expired' } }
    await unwrap(Promise.resolve({ error: body, response: json(401, body) })).catch(() => {})
    expect(ended).toHaveBeenCalledTimes(1)

    const login = json(401, body)
    Object.defineProperty(login, 'url', { value: 'http://127.0.0.1/api/admin/v1/login' })
    await unwrap(Promise.resolve({ error: body, response: login })).catch(() => {})
    expect(ended).toHaveBeenCalledTimes(1)
    setUnauthorizedHandler(() => {})
  })
})
