// vue-i18n setup: Chinese first, English by a switch that is remembered.
// One key set in src/locales/*.json, top-level keys per area (common, nav,
// errors, enums, dashboard, members, ...): a page's words live under its
// area, shared words under common/enums/glossary.
//
// Chinese is in the first load; English is a lazy chunk fetched when chosen
// (loadMessages), so the initial JavaScript carries one language.
import { createI18n, type Composer } from 'vue-i18n'
import zhCN from '@/locales/zh-CN.json'

/** One language's messages (the key set is Chinese's; a test checks English has the same). */
export type Messages = typeof zhCN

/** The languages the panel speaks. */
export type Locale = 'zh-CN' | 'en'

export const LOCALES: readonly Locale[] = ['zh-CN', 'en'] as const

/** Where the chosen language is kept. */
export const LOCALE_KEY = 'loyalty.locale'

/** initialLocale is the saved choice, else Chinese. */
export function initialLocale(saved: string | null): Locale {
  return saved === 'en' ? 'en' : 'zh-CN'
}

/** loadMessages returns a language's messages, fetching English on first use. */
export async function loadMessages(locale: Locale): Promise<Messages> {
  return locale === 'en' ? ((await import('@/locales/en.json')).default as Messages) : zhCN
}

// Screens' messages: the words of lazily loaded screens (redemptions,
// channels, referrals, a campaign, care, points rules, tiers, audit, staff,
// API keys, the member page's messages and stage history, the settings'
// frequency cap and service notices) live in src/locales/screens/*.json, fetched with the first such
// screen (screenMessages) and merged into every loaded language, so the
// first load stays within its budget. The completeness test covers them.
let screensWanted = false

/** loadScreenMessages returns the screens' messages of a language. */
export async function loadScreenMessages(locale: Locale): Promise<Record<string, unknown>> {
  return locale === 'en' ? (await import('@/locales/screens/en.json')).default : (await import('@/locales/screens/zh-CN.json')).default
}

/** withScreenMessages wraps a lazy route component: the screens' messages are merged before it renders. */
export function withScreenMessages<T>(
  i18n: () => Pick<Composer, 'locale' | 'availableLocales' | 'mergeLocaleMessage'>,
  load: () => Promise<T>,
): () => Promise<T> {
  return async () => {
    const [mod] = await Promise.all([load(), mergeScreens(i18n())])
    return mod
  }
}

async function mergeScreens(i18n: Pick<Composer, 'locale' | 'availableLocales' | 'mergeLocaleMessage'>, only?: Locale) {
  screensWanted = true
  const locales = only ? [only] : (i18n.availableLocales as Locale[])
  await Promise.all(locales.map(async (l) => i18n.mergeLocaleMessage(l, (await loadScreenMessages(l)) as never)))
}

/** createPanelI18n speaks Chinese, and the other languages given (already loaded). */
export function createPanelI18n(locale: Locale, more: Partial<Record<Locale, Messages>> = {}) {
  return createI18n({
    legacy: false,
    locale,
    fallbackLocale: 'zh-CN',
    messages: { 'zh-CN': zhCN, ...more } as Record<Locale, Messages>,
    missingWarn: false,
    fallbackWarn: false,
  })
}

/** switchLocale changes the language (loading it first when needed) and remembers it. */
export async function switchLocale(
  i18n: Pick<Composer, 'locale' | 'availableLocales' | 'setLocaleMessage' | 'mergeLocaleMessage'>,
  l: Locale,
): Promise<void> {
  if (!i18n.availableLocales.includes(l)) {
    i18n.setLocaleMessage(l, await loadMessages(l))
    if (screensWanted) await mergeScreens(i18n, l)
  }
  i18n.locale.value = l
  localStorage.setItem(LOCALE_KEY, l)
  document.documentElement.lang = l
}

/** flattenKeys lists every message key as a dotted path, for the completeness test. */
export function flattenKeys(obj: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' ? flattenKeys(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`],
  )
}
