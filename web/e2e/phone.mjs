// A phone in WeChat for the member centre's scenarios and its load budget.

/** WeChat's in-app browser on an iPhone. */
export const WECHAT_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 ' +
  'MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN'

/** phone opens a fresh phone-sized context in WeChat whose OAuth signs in as openid (the simulator's sandbox_openid). */
export async function phone(browser, openid) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    userAgent: WECHAT_UA,
    locale: 'zh-CN',
    timezoneId: 'Asia/Shanghai',
  })
  if (openid) {
    // The simulator's authorize page signs in a new random user unless told
    // whom: the person holding the phone is the follower.
    await context.route('**/connect/oauth2/authorize*', (route) => {
      const u = new URL(route.request().url())
      u.searchParams.set('sandbox_openid', openid)
      return route.continue({ url: u.toString() })
    })
  }
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of (4\d\d)/.test(m.text())) problems.push(`console: ${m.text()}`)
  })
  return { context, page, problems }
}
