// vue-i18n setup: Chinese first, English by a switch that is remembered.
// One key set in src/locales/*.json, top-level keys per area (common, nav,
// errors, enums, dashboard, members, ...): a page's words live under its
// area, shared words under common/enums/glossary.
import { createI18n } from 'vue-i18n'
import zhCN from '@/locales/zh-CN.json'
import en from '@/locales/en.json'

/** The languages the panel speaks. */
export type Locale = 'zh-CN' | 'en'

export const LOCALES: readonly Locale[] = ['zh-CN', 'en'] as const

/** Where the chosen language is kept. */
export const LOCALE_KEY = 'loyalty.locale'

export const messages = { 'zh-CN': zhCN, en } as const

/** initialLocale is the saved choice, else Chinese. */
export function initialLocale(saved: string | null): Locale {
  return saved === 'en' ? 'en' : 'zh-CN'
}

export function createPanelI18n(locale: Locale) {
  return createI18n({
    legacy: false,
    locale,
    fallbackLocale: 'zh-CN',
    messages,
    missingWarn: false,
    fallbackWarn: false,
  })
}

/** flattenKeys lists every message key as a dotted path, for the completeness test. */
export function flattenKeys(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' ? flattenKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  )
}
