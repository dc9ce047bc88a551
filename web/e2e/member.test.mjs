// What a member does in the member centre, on a phone in WeChat, end to end
// against the real binary in sandbox mode: a follower opens the centre
// through the simulator's OAuth (silent snsapi_base), sees the member code,
// balance and tier progress, edits their birthday and a child's birthday,
// shares their WeChat avatar when they choose to (snsapi_userinfo),
// redeems a coupon reward and shows the coupon; staff then verify the
// coupon through the admin API, once, and the simulator recorded one
// "coupon issued" and one "points redeemed" notice. A sign-in coming back with a state
// the page did not start is refused. Every page is checked with axe and
// saved as a screenshot (member-*.png).
//   npm run e2e   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y as axe, launchBrowser, shot, startServer } from './harness.mjs'
import { phone } from './phone.mjs'

const T = 20_000
// A 1×1 PNG standing in for a WeChat avatar.
const AVATAR_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64')
/** checkA11y waits for Vant's toasts and dialogs to finish moving, then runs axe. */
async function checkA11y(page, screen) {
  // A toast is position: fixed (offsetParent is always null); Vant hides it
  // with display: none once it has faded out.
  await page.waitForFunction(() => [...document.querySelectorAll('.van-toast')].every((t) => getComputedStyle(t).display === 'none'), null, { timeout: T })
  await axe(page, screen)
}

const tab = (page, name) => page.locator('.van-tabbar-item', { hasText: name }).click()

describe('member centre', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  let memberId
  let couponCode
  const openid = 'o_e2e_member_centre'

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    await api(server.base, owner, 'PUT', '/api/admin/v1/points/rules', {
      checkin: { points: 5, cycle_days: 7, streak_bonuses: [{ day: 7, points: 20 }] },
    })
    await api(server.base, owner, 'POST', '/api/admin/v1/tiers', { name: '银卡', level: 1, threshold: 0 })
    await api(server.base, owner, 'POST', '/api/admin/v1/tiers', { name: '金卡', level: 2, threshold: 100000, multiplier_pct: 150 })
    await api(server.base, owner, 'POST', '/api/admin/v1/rewards', { name: '满100减10元券', kind: 'coupon', points_cost: 300, coupon_valid_days: 30 })
    await api(server.base, owner, 'POST', '/api/admin/v1/rewards', { name: '拿铁一杯', kind: 'gift', points_cost: 100, description: '任意门店可兑' })
    await api(server.base, owner, 'POST', '/api/admin/v1/rewards', { name: '保温杯', kind: 'gift', points_cost: 5000 })
    const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { openid })
    memberId = f.member_id
    // ¥388 spent: 388 points (1 per ¥1) and ¥612 short of 金卡.
    await api(server.base, owner, 'POST', '/api/admin/v1/orders', { external_id: 'E2E-MC-1', member_id: memberId, amount_fen: 38800 })
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('signs a follower in through WeChat and shows the card, balance and tier progress', async () => {
    const { page, problems, context } = await phone(browser, openid)
    const seen = []
    page.on('request', (r) => {
      if (r.isNavigationRequest()) seen.push(r.url())
    })
    await page.goto(`${server.base}/m/${server.merchant}/`)
    await page.getByTestId('member-code').waitFor({ timeout: T })
    // It went through the simulator's authorize page and came back with a code.
    assert.ok(seen.some((u) => u.includes('/connect/oauth2/authorize') && u.includes('snsapi_base')), seen.join('\n'))
    assert.ok(seen.some((u) => u.includes(`/m/${server.merchant}/?code=`)), seen.join('\n'))
    assert.equal(new URL(page.url()).search, '', 'the code and state are taken out of the address')

    assert.equal(await page.getByTestId('balance').innerText(), '388')
    assert.match(await page.getByTestId('tier').innerText(), /银卡/)
    assert.match(await page.getByTestId('tier-next').innerText(), /¥612\.00.*金卡/)
    // The code on the card names this member at the till.
    const code = (await page.getByTestId('member-code').innerText()).trim()
    const resolved = await api(server.base, owner, 'POST', '/api/admin/v1/member-codes/resolve', { member_code: code })
    assert.equal(resolved.member.id, memberId)
    await page.locator('.member-code svg.qr path').waitFor()
    await checkA11y(page, 'member home')
    await shot(page, 'member-01-home')

    // Check in today.
    await page.locator('.links .van-cell', { hasText: '每日签到' }).click()
    await page.getByTestId('checkin').click()
    await page.getByTestId('checkin-result').getByText('签到成功，获得 5 积分').waitFor({ timeout: T })
    await checkA11y(page, 'check-in')
    await shot(page, 'member-02-checkin')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('edits the birthday and a child\'s birthday, and the API holds them', async () => {
    const { page, problems, context } = await phone(browser, openid)
    await page.goto(`${server.base}/m/${server.merchant}/profile`)
    await page.locator('input[name=birthday]').waitFor({ timeout: T })
    await page.locator('input[name=name]').fill('王小明')
    await page.locator('input[name=birthday]').fill('1990-05-20')
    await page.getByTestId('add-child').click()
    await page.locator('input[name=child-0-name]').fill('大宝')
    await page.locator('input[name=child-0-date]').fill('2018-09-01')
    await checkA11y(page, 'profile')
    await page.getByTestId('save-profile').click()
    await page.locator('.van-toast', { hasText: '已保存' }).waitFor({ timeout: T })
    await shot(page, 'member-03-profile-saved')

    const m = await api(server.base, owner, 'GET', `/api/admin/v1/members/${memberId}`)
    const held = m.member ?? m
    assert.equal(held.name, '王小明')
    assert.deepEqual({ month: held.birthday.month, day: held.birthday.day, year: held.birthday.year }, { month: 5, day: 20, year: 1990 })
    const child = held.care_dates.find((c) => c.kind === 'child_birthday')
    assert.deepEqual({ label: child.label, month: child.month, day: child.day, year: child.year }, { label: '大宝', month: 9, day: 1, year: 2018 })

    // A reload shows what was saved.
    await page.reload()
    await page.locator('input[name=child-0-name]').waitFor({ timeout: T })
    assert.equal(await page.locator('input[name=birthday]').inputValue(), '1990-05-20')
    assert.equal(await page.locator('input[name=child-0-date]').inputValue(), '2018-09-01')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('shares the WeChat avatar only when asked, keeping the name the member wrote', async () => {
    const { page, problems, context } = await phone(browser, openid)
    // WeChat's image host, as the phone would reach it.
    await context.route('https://thirdwx.qlogo.cn/**', (route) => route.fulfill({ contentType: 'image/png', body: AVATAR_PNG }))
    const seen = []
    page.on('request', (r) => {
      if (r.isNavigationRequest()) seen.push(r.url())
    })
    await page.goto(`${server.base}/m/${server.merchant}/profile`)
    await page.getByTestId('share-wechat').waitFor({ timeout: T })
    assert.ok(!seen.some((u) => u.includes('snsapi_userinfo')), 'the profile is not asked for before the member taps')
    await page.getByTestId('share-wechat').click()
    await page.locator('img.avatar').waitFor({ timeout: T })
    assert.ok(seen.some((u) => u.includes('/connect/oauth2/authorize') && u.includes('snsapi_userinfo')), seen.join('\n'))
    assert.equal(await page.locator('input[name=name]').inputValue(), '王小明', 'a written name is kept')
    const held = await api(server.base, owner, 'GET', `/api/admin/v1/members/${memberId}`)
    assert.match(held.avatar_url, new RegExp(`^https://thirdwx\\.qlogo\\.cn/.*${openid}`))
    assert.equal(held.name, '王小明')
    await checkA11y(page, 'profile shared')
    await shot(page, 'member-03b-profile-avatar')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('redeems a coupon reward with one tap and a confirmation, and shows the coupon', async () => {
    const { page, problems, context } = await phone(browser, openid)
    await page.goto(`${server.base}/m/${server.merchant}/`)
    await page.getByTestId('balance').waitFor({ timeout: T })
    await tab(page, '积分兑换')
    const reward = page.getByTestId('reward').filter({ hasText: '满100减10元券' })
    await reward.waitFor({ timeout: T })
    // 393 points: the coupon (300) and the latte (100) are affordable, the cup is not.
    assert.equal(await page.getByTestId('reward').count(), 2)
    assert.match(await page.locator('.reward.dear').innerText(), /保温杯[\s\S]*还差 4,607 积分/)
    await checkA11y(page, 'rewards')
    await shot(page, 'member-04-rewards')

    await reward.getByRole('button', { name: '兑换满100减10元券' }).click()
    const dialog = page.locator('.van-dialog', { hasText: '确认兑换' })
    await dialog.waitFor({ timeout: T })
    assert.match(await dialog.innerText(), /300 积分兑换「满100减10元券」/)
    await checkA11y(page, 'redeem confirmation')
    await shot(page, 'member-05-redeem-confirm')
    await dialog.getByRole('button', { name: '兑换' }).click()

    // The coupon opens at once, its code large, to show at the counter.
    const shown = page.getByTestId('coupon-shown')
    await shown.waitFor({ timeout: T })
    couponCode = (await page.getByTestId('coupon-code').innerText()).replace(/\s/g, '')
    const mine = await api(server.base, owner, 'GET', `/api/admin/v1/coupons/${couponCode}`)
    assert.equal(mine.member_id, memberId)
    assert.equal(mine.status, 'issued')
    await checkA11y(page, 'coupon shown')
    await shot(page, 'member-06-coupon-shown')
    await page.getByRole('button', { name: '关闭' }).click()
    await shown.waitFor({ state: 'hidden', timeout: T })
    assert.match(await page.getByTestId('coupon').first().innerText(), /满100减10元券/)
    await checkA11y(page, 'coupons')
    await shot(page, 'member-07-coupons')

    // The ledger shows the redemption and the check-in.
    await page.goto(`${server.base}/m/${server.merchant}/points`)
    await page.getByTestId('ledger-entry').first().waitFor({ timeout: T })
    assert.match(await page.getByTestId('ledger-entry').first().innerText(), /-300/)
    assert.equal(await page.getByTestId('ledger-entry').count(), 3)
    await checkA11y(page, 'points ledger')
    await shot(page, 'member-08-points')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('lets staff verify the coupon once; a second verification is refused', async () => {
    const first = await api(server.base, owner, 'POST', '/api/admin/v1/coupons/verify', { code: couponCode, request_id: 'till-1', store: '南京西路店' })
    assert.equal(first.coupon?.status ?? first.status, 'used')
    const again = await api(server.base, owner, 'POST', '/api/admin/v1/coupons/verify', { code: couponCode, request_id: 'till-1', store: '南京西路店' })
    assert.equal(again.replayed, true)
    await assert.rejects(
      api(server.base, owner, 'POST', '/api/admin/v1/coupons/verify', { code: couponCode, request_id: 'till-2', store: '南京西路店' }),
      /409/,
    )
    // The member sees it used.
    const { page, problems, context } = await phone(browser, openid)
    await page.goto(`${server.base}/m/${server.merchant}/coupons?status=used`)
    await page.getByTestId('coupon').filter({ hasText: '南京西路店' }).waitFor({ timeout: T })
    await checkA11y(page, 'used coupons')
    await shot(page, 'member-09-coupon-used')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('sent the member exactly one "coupon issued" and one "points redeemed" notice', async () => {
    // Service notices go out through the engine a moment after the
    // redemption: wait for both, give a duplicate time to show, then count.
    const count = async () => {
      const { sent } = await api(server.base, owner, 'GET', '/api/admin/v1/sandbox/sent')
      const mine = sent.filter((m) => m.touser === openid)
      return {
        issued: mine.filter((m) => m.template_id === 'TPL_COUPON_ISSUED').length,
        redeemed: mine.filter((m) => m.template_id === 'TPL_POINTS_REDEEMED').length,
      }
    }
    const deadline = Date.now() + T
    let n = await count()
    while ((n.issued === 0 || n.redeemed === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250))
      n = await count()
    }
    await new Promise((r) => setTimeout(r, 2000))
    assert.deepEqual(await count(), { issued: 1, redeemed: 1 })
  })

  it('refuses a sign-in it did not start, and a redirect to another site', async () => {
    const { page, context } = await phone(browser)
    // WeChat coming back with a state this browser never asked for (a
    // login forced on the member by another site).
    const code = (await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/oauth-code', { openid: 'o_attacker' })).code
    await page.goto(`${server.base}/m/${server.merchant}/?code=${code}&state=${'ab'.repeat(32)}`)
    await page.getByText('这次登录不是从本页发起的').waitFor({ timeout: T })
    assert.equal(await page.evaluate((k) => localStorage.getItem(k), `loyalty.member.${server.merchant}`), null)
    await checkA11y(page, 'refused sign-in')
    await shot(page, 'member-10-signin-refused')
    // The API refuses the same state too, and a redirect elsewhere.
    await assert.rejects(
      api(server.base, null, 'POST', `/api/h5/v1/${server.merchant}/login`, { code, state: 'ab'.repeat(32) }),
      /400 .*state/,
    )
    await assert.rejects(
      api(server.base, null, 'GET', `/api/h5/v1/${server.merchant}/oauth-url?redirect_uri=${encodeURIComponent('https://evil.example.com/m/1/')}`),
      /400 .*redirect_uri/,
    )
    await context.close()
  })
})
