import { describe, expect, it } from 'vitest'
import { addDays, formatDate, formatDateTime, formatFen, formatMonthDay, formatPercent, formatRelative, localToday, parseYuan } from './format'

describe('formatFen', () => {
  it.each([
    [0, '¥0.00'],
    [5, '¥0.05'],
    [99, '¥0.99'],
    [100, '¥1.00'],
    [12850, '¥128.50'],
    [123456789, '¥1,234,567.89'],
    [-5, '-¥0.05'],
    [-12850, '-¥128.50'],
    [1_000_000_000_000, '¥10,000,000,000.00'],
  ])('%d fen is %s', (fen, shown) => {
    expect(formatFen(fen)).toBe(shown)
  })
  it('shows a dash for no amount', () => {
    expect(formatFen(null)).toBe('—')
    expect(formatFen(undefined)).toBe('—')
    expect(formatFen(Number.NaN)).toBe('—')
  })
})

describe('parseYuan', () => {
  it.each([
    ['128.5', 12850],
    ['128.50', 12850],
    ['0.01', 1],
    ['¥1,280.00', 128000],
    [' 3 ', 300],
    ['0.1', 10],
  ])('%s is %d fen', (s, fen) => {
    expect(parseYuan(s)).toBe(fen)
  })
  it.each(['', 'abc', '1.234', '-1', '1e3', '1.', '.5', '¥'])('%s is not an amount', (s) => {
    expect(parseYuan(s)).toBeNull()
  })
  it('round-trips with formatFen without float error', () => {
    for (const fen of [1, 7, 10, 29, 1999, 12850, 100000001]) expect(parseYuan(formatFen(fen))).toBe(fen)
  })
})

describe('dates in the merchant zone', () => {
  // 2026-03-31T16:30:00Z is 1 April 00:30 in Shanghai and still 31 March in London.
  const instant = '2026-03-31T16:30:00Z'
  it('formats an instant in the given zone', () => {
    expect(formatDateTime(instant, 'Asia/Shanghai')).toBe('2026-04-01 00:30')
    expect(formatDateTime(instant, 'Europe/London')).toBe('2026-03-31 17:30')
    expect(formatDateTime(instant, 'UTC')).toBe('2026-03-31 16:30')
  })
  it('takes the local calendar day', () => {
    expect(formatDate(instant, 'Asia/Shanghai')).toBe('2026-04-01')
    expect(formatDate(instant, 'America/Los_Angeles')).toBe('2026-03-31')
    expect(localToday('Asia/Shanghai', new Date(instant))).toBe('2026-04-01')
  })
  it('shows midnight as 00, not 24', () => {
    expect(formatDateTime('2026-01-01T16:00:00Z', 'Asia/Shanghai')).toBe('2026-01-02 00:00')
  })
  it('shows a dash for no time or a bad one', () => {
    expect(formatDateTime(null)).toBe('—')
    expect(formatDateTime('not a date')).toBe('—')
  })
  it('moves calendar dates across months and leap days', () => {
    expect(addDays('2024-02-28', 1)).toBe('2024-02-29')
    expect(addDays('2026-03-01', -1)).toBe('2026-02-28')
    expect(addDays('2026-12-31', 1)).toBe('2027-01-01')
  })
})

describe('relative times', () => {
  const now = new Date('2026-06-10T12:00:00Z')
  it('reads in Chinese and English', () => {
    expect(formatRelative('2026-06-07T12:00:00Z', 'zh-CN', now)).toBe('3天前')
    expect(formatRelative('2026-06-07T12:00:00Z', 'en', now)).toBe('3 days ago')
    expect(formatRelative('2026-06-10T11:00:00Z', 'en', now)).toBe('1 hour ago')
    expect(formatRelative('2026-06-10T11:59:30Z', 'en', now)).toBe('now')
    expect(formatRelative('2025-06-10T12:00:00Z', 'en', now)).toBe('last year')
  })
})

describe('other formats', () => {
  it('shows rates with one decimal', () => {
    expect(formatPercent(0.1234)).toBe('12.3%')
    expect(formatPercent(1)).toBe('100.0%')
    expect(formatPercent(null)).toBe('—')
  })
  it('shows birthdays with or without a year', () => {
    expect(formatMonthDay({ month: 5, day: 20 })).toBe('05-20')
    expect(formatMonthDay({ month: 5, day: 20, year: 1990 })).toBe('1990-05-20')
    expect(formatMonthDay(null)).toBe('—')
  })
})
