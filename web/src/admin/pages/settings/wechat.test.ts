import { describe, expect, it } from 'vitest'
import { createI18n } from 'vue-i18n'
import zhCN from '@/locales/zh-CN.json'
import { wechatResultText } from './wechat'

const i18n = createI18n({ legacy: false, locale: 'zh-CN', messages: { 'zh-CN': zhCN } })
const { t, te } = i18n.global as unknown as { t: (k: string, v?: Record<string, unknown>) => string; te: (k: string) => boolean }

describe('wechatResultText', () => {
  it('says what a known errcode means and what to do', () => {
    expect(wechatResultText({ ok: false, errcode: 40125, message: 'the AppSecret is wrong' }, t, te)).toMatch(/AppSecret 不正确.*\(errcode 40125\)/)
    expect(wechatResultText({ ok: false, errcode: 40164 }, t, te)).toMatch(/IP 白名单/)
  })
  it("falls back to the server's words for other codes", () => {
    expect(wechatResultText({ ok: false, errcode: 12345, message: 'WeChat error 12345' }, t, te)).toBe('微信返回：WeChat error 12345 (errcode 12345)')
  })
  it('says when WeChat could not be reached at all', () => {
    expect(wechatResultText({ ok: false, errcode: 0, message: 'WeChat could not be reached: timeout' }, t, te)).toBe(
      '无法连接到微信服务器，请检查本服务器的网络（服务器说明：WeChat could not be reached: timeout）',
    )
  })
  it('says a success plainly', () => {
    expect(wechatResultText({ ok: true }, t, te)).toBe('连接正常')
  })
})
