import { describe, expect, it } from 'vitest'
import { emptyFilters, fromQuery, isFiltered, toApiParams, toQuery, toSearchParams } from './query'

describe('members filters in the URL', () => {
  it('round-trip through the query', () => {
    const f = { ...emptyFilters(), q: '王', stage: 'loyal', tag: [3, 7], tier: 2, birthday_month: 5, follow_status: 'following', channel: 'spring' }
    expect(fromQuery(toQuery(f) as never)).toEqual(f)
  })
  it('drop malformed values instead of sending them', () => {
    const f = fromQuery({ tag: ['1', 'x', '1', '0'], tier: '-3', birthday_month: '13', follow_status: 'maybe', q: '  ' })
    expect(f).toEqual({ ...emptyFilters(), tag: [1] })
    expect(isFiltered(f)).toBe(true)
    expect(isFiltered(emptyFilters())).toBe(false)
  })
  it('send no empty parameter (the API refuses them) and repeat tag', () => {
    expect(toApiParams(emptyFilters())).toEqual({})
    const p = toSearchParams({ ...emptyFilters(), tag: [1, 2], q: ' 138 ' })
    expect(p.toString()).toBe('q=138&tag=1&tag=2')
  })
  it('keep at most five tags, as the API allows', () => {
    expect(fromQuery({ tag: ['1', '2', '3', '4', '5', '6'] }).tag).toEqual([1, 2, 3, 4, 5])
  })
})
