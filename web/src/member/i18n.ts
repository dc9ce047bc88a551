// The member centre's words: Chinese first (in the first load), English
// fetched when chosen. Its own message files (src/locales/member/), so the
// phone does not download the admin panel's words; a test holds that both
// languages have the same keys.
import { createI18n } from 'vue-i18n'
import zhCN from '@/locales/member/zh-CN.json'

export type MemberMessages = typeof zhCN
export type MemberLocale = 'zh-CN' | 'en'
export const MEMBER_LOCALE_KEY = 'loyalty.member.locale'

export function createMemberI18n(locale: MemberLocale, en?: MemberMessages) {
  return createI18n({
    legacy: false,
    locale,
    fallbackLocale: 'zh-CN',
    messages: (en ? { 'zh-CN': zhCN, en } : { 'zh-CN': zhCN }) as Record<MemberLocale, MemberMessages>,
    missingWarn: false,
    fallbackWarn: false,
  })
}

export async function loadEnglish(): Promise<MemberMessages> {
  return (await import('@/locales/member/en.json')).default as MemberMessages
}
