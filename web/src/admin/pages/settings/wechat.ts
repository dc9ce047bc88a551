// The WeChat connection test's result in plain words: the errcodes a
// merchant meets when setting up, each with what to do, in the panel's
// language; other codes fall back to the server's explanation; errcode 0
// is a network failure (WeChat not reached).
type T = (key: string, values?: Record<string, unknown>) => string
type Te = (key: string) => boolean

export interface WeChatResult {
  ok?: boolean
  errcode?: number
  message?: string
}

export function wechatResultText(r: WeChatResult, t: T, te: Te): string {
  if (r.ok) return t('settings.testOk')
  const code = r.errcode ?? 0
  const key = `settings.wechatErrors.${code}`
  if (code !== 0 && te(key)) return `${t(key)} (errcode ${code})`
  if (code === 0) return t('settings.unreachable', { message: r.message ?? '' })
  return `${t('settings.wechatSays', { message: r.message ?? '' })} (errcode ${code})`
}
