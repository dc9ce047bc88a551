// Formatting bound to the merchant's time zone and the chosen language.
import { useI18n } from 'vue-i18n'
import { useSession } from '@/admin/stores/session'
import * as f from '@/shared/format'

export function useFormat() {
  const session = useSession()
  const { t, locale } = useI18n()
  return {
    fen: f.formatFen,
    num: f.formatNumber,
    pct: f.formatPercent,
    monthDay: f.formatMonthDay,
    dateTime: (v: string | null | undefined) => f.formatDateTime(v, session.timeZone),
    date: (v: string | null | undefined) => f.formatDate(v, session.timeZone),
    relative: (v: string | null | undefined) => f.formatRelative(v, locale.value),
    /** enumLabel translates a closed-set value, falling back to the value itself. */
    enumLabel: (group: string, value: string | null | undefined) => {
      if (value === null || value === undefined || value === '') return '—'
      const key = `enums.${group}.${value}`
      const s = t(key)
      return s === key ? value : s
    },
  }
}
