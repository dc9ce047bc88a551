import { describe, expect, it } from 'vitest'
import { toApiError } from '@/api/errors'
import { useFieldErrors } from './useFieldErrors'

describe('useFieldErrors', () => {
  it('puts the API fields on the form props, renamed where asked', () => {
    const fe = useFieldErrors({ amount_fen: 'amount' })
    const err = toApiError(400, new Headers(), {
      error: { code: 'validation_failed', message: 'x', fields: { amount_fen: 'must be at least 1', external_id: 'too long' } },
    })
    expect(fe.take(err)).toBe(true)
    expect({ ...fe.errors }).toEqual({ amount: 'must be at least 1', external_id: 'too long' })
    expect(fe.take(new Error('other'))).toBe(false)
    expect({ ...fe.errors }).toEqual({})
  })
})
