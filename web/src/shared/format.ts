// Formatting shared by every screen: money (fen → ¥), dates and times in the
// merchant's time zone, relative times. Pure functions, unit-tested.

/** The zone used until the merchant's settings are known. */
export const DEFAULT_TIME_ZONE = 'Asia/Shanghai'

const grouping = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0, useGrouping: true })

/**
 * formatFen shows an amount in fen as yuan with two decimals: 12850 → "¥128.50",
 * -5 → "-¥0.05". Integer arithmetic only, so no amount is ever rounded wrongly.
 */
export function formatFen(fen: number | null | undefined): string {
  if (fen === null || fen === undefined || !Number.isFinite(fen)) return '—'
  const sign = fen < 0 ? '-' : ''
  const abs = Math.abs(Math.trunc(fen))
  const yuan = Math.floor(abs / 100)
  const cents = abs % 100
  return `${sign}¥${grouping.format(yuan)}.${String(cents).padStart(2, '0')}`
}

/**
 * parseYuan reads what a person types for an amount ("128.5", "¥1,280.00")
 * into fen, or null when it is not an amount with at most two decimals.
 */
export function parseYuan(input: string): number | null {
  const s = input.trim().replace(/^¥/, '').replace(/,/g, '')
  const m = /^(\d{1,10})(?:\.(\d{1,2}))?$/.exec(s)
  if (!m) return null
  return Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0'))
}

/** formatNumber groups digits: 1234567 → "1,234,567". */
export function formatNumber(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—'
  return new Intl.NumberFormat('en-US').format(n)
}

/** formatPercent shows a 0..1 rate with one decimal: 0.1234 → "12.3%"; null → "—". */
export function formatPercent(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—'
  return `${(Math.round(rate * 1000) / 10).toFixed(1)}%`
}

function parts(date: Date, timeZone: string): Record<string, string> {
  const out: Record<string, string> = {}
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  })
  for (const p of f.formatToParts(date)) out[p.type] = p.value
  return out
}

function toDate(value: string | Date | null | undefined): Date | null {
  if (value === null || value === undefined || value === '') return null
  const d = value instanceof Date ? value : new Date(value)
  return Number.isNaN(d.getTime()) ? null : d
}

/** formatDateTime shows an instant as "YYYY-MM-DD HH:mm" in the given zone. */
export function formatDateTime(value: string | Date | null | undefined, timeZone = DEFAULT_TIME_ZONE): string {
  const d = toDate(value)
  if (!d) return '—'
  const p = parts(d, timeZone)
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`
}

/** formatDate shows an instant's local calendar day "YYYY-MM-DD" in the given zone. */
export function formatDate(value: string | Date | null | undefined, timeZone = DEFAULT_TIME_ZONE): string {
  const d = toDate(value)
  if (!d) return '—'
  const p = parts(d, timeZone)
  return `${p.year}-${p.month}-${p.day}`
}

/** localToday is today's date "YYYY-MM-DD" in the zone. */
export function localToday(timeZone = DEFAULT_TIME_ZONE, now: Date = new Date()): string {
  return formatDate(now, timeZone)
}

/** addDays moves a "YYYY-MM-DD" calendar date by n days (no time zone involved). */
export function addDays(date: string, n: number): string {
  const [y, m, d] = date.split('-').map(Number)
  const t = new Date(Date.UTC(y, m - 1, d + n))
  return t.toISOString().slice(0, 10)
}

/**
 * formatRelative says how long ago (or ahead) an instant is, in the
 * locale's words: "3 天前", "3 days ago", "刚刚" for under a minute.
 */
export function formatRelative(value: string | Date | null | undefined, locale: string, now: Date = new Date()): string {
  const d = toDate(value)
  if (!d) return '—'
  const seconds = Math.round((d.getTime() - now.getTime()) / 1000)
  const abs = Math.abs(seconds)
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' })
  if (abs < 60) return rtf.format(0, 'second')
  const steps: [number, Intl.RelativeTimeFormatUnit][] = [
    [60, 'minute'],
    [3600, 'hour'],
    [86400, 'day'],
    [86400 * 30, 'month'],
    [86400 * 365, 'year'],
  ]
  let unit: Intl.RelativeTimeFormatUnit = 'minute'
  let size = 60
  for (const [s, u] of steps) {
    if (abs >= s) {
      unit = u
      size = s
    }
  }
  return rtf.format(Math.trunc(seconds / size), unit)
}

/** A month/day birthday or care date, with an optional year. */
export interface MonthDay {
  month: number
  day: number
  year?: number | null
}

/** formatMonthDay shows a birthday: "05-20" or "1990-05-20". */
export function formatMonthDay(d: MonthDay | null | undefined): string {
  if (!d) return '—'
  const md = `${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`
  return d.year ? `${d.year}-${md}` : md
}
