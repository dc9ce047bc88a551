// The merchant's remaining daily screens, end to end against the real
// binary in sandbox mode: a staff member verifies (核销) a coupon at the
// till and a second verification is refused; the member page shows the
// messages the member received and their lifecycle stage history; channel
// QR codes are created and shown; the frequency cap is edited in settings.
// Each screen is checked with axe and saved as a screenshot, in Chinese
// and then in English.
//   npm run e2e   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y as axe, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'

const T = 20_000

const input = (page, id) => page.locator(`input[data-testid="${id}"], [data-testid="${id}"] input`).first()

async function checkA11y(page, screen) {
  await page.locator('.el-message').first().waitFor({ state: 'detached', timeout: T })
  await axe(page, screen)
}

describe('merchant screens', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  let memberId
  let coupon

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    // Quiet hours that never hold the campaign below.
    const h = (new Date().getUTCHours() + 8) % 24
    const hh = (n) => `${String((h + n) % 24).padStart(2, '0')}:00`
    await api(server.base, owner, 'PATCH', '/api/admin/v1/settings', { quiet_hours: { start: hh(2), end: hh(4) } })
    // A follower with points redeems a coupon reward; buys once (a stage
    // change) and gets a campaign message.
    const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', {})
    memberId = f.member_id
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${memberId}`, { name: '林小满' })
    await api(server.base, owner, 'POST', `/api/admin/v1/members/${memberId}/points/adjustments`, { points: 500, reason: '开业赠送', request_id: 'e2e-gift' })
    const reward = await api(server.base, owner, 'POST', '/api/admin/v1/rewards', { name: '美式咖啡券', kind: 'coupon', points_cost: 100 })
    const red = await api(server.base, owner, 'POST', `/api/admin/v1/members/${memberId}/redemptions`, { reward_id: reward.id, request_id: 'e2e-coupon-1' })
    coupon = red.redemption.code
    assert.ok(coupon, JSON.stringify(red))
    await api(server.base, owner, 'POST', `/api/admin/v1/members/${memberId}/redemptions`, { reward_id: reward.id, request_id: 'e2e-coupon-2' })
    await api(server.base, owner, 'POST', '/api/admin/v1/orders', { external_id: 'E2E-STAGE-1', member_id: memberId, amount_fen: 3800 })
    const c = await api(server.base, owner, 'POST', '/api/admin/v1/campaigns', {
      name: '新品上市提醒',
      channel: 'template',
      template_id: 'TPL_POINTS_CHANGED',
      message: { fields: { first: '{{name|亲爱的会员}}，新品上市' } },
      target: { all_members: true },
      schedule: { kind: 'now' },
    })
    await api(server.base, owner, 'POST', `/api/admin/v1/campaigns/${c.id}/schedule`)
    for (let i = 0; i < 100; i++) {
      const p = await api(server.base, owner, 'GET', `/api/admin/v1/campaigns/${c.id}/progress`)
      if (p.campaign.status === 'completed') break
      await new Promise((r) => setTimeout(r, 300))
    }
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('verifies a coupon once; a second verification is refused', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '兑换与核销' }).click()
    await page.getByTestId('coupons').locator('tr', { hasText: coupon }).waitFor({ timeout: T })
    // The list names the member and links to their page.
    const who = page.getByTestId('coupons').locator('tr', { hasText: coupon }).getByTestId('coupon-member')
    assert.equal((await who.innerText()).trim(), '林小满')
    assert.equal(await who.getAttribute('href'), `/admin/members/${memberId}`)
    // Typed in lower case with spaces, as people do: the API does not mind.
    await input(page, 'verify-code').fill(coupon.toLowerCase())
    await page.getByTestId('verify-lookup').click()
    const box = page.getByTestId('verify-coupon')
    await box.getByText('美式咖啡券').waitFor({ timeout: T })
    assert.match(await box.innerText(), /林小满/)
    assert.match(await page.getByTestId('verify-status').innerText(), /未使用/)
    await checkA11y(page, 'verify box')
    await shot(page, 'r01-verify-lookup')
    await page.getByTestId('verify-confirm').click()
    const confirm = page.getByRole('dialog', { name: '确认核销' })
    await confirm.getByText(/林小满/).waitFor({ timeout: T })
    await shot(page, 'r02-verify-confirm')
    await confirm.getByRole('button', { name: '确认核销' }).click()
    await page.getByTestId('verify-done').waitFor({ timeout: T })
    assert.match(await page.getByTestId('verify-status').innerText(), /已核销/)
    await page.getByTestId('coupons').locator('tr', { hasText: coupon }).getByText('已核销').waitFor({ timeout: T })
    let held = await api(server.base, owner, 'GET', `/api/admin/v1/coupons/${coupon}`)
    assert.equal(held.status, 'used')
    await shot(page, 'r03-verified')

    // A second till had the same coupon on screen before: its verification
    // is refused by the API, and the refusal says when and by whom.
    const other = await api(server.base, owner, 'POST', `/api/admin/v1/members/${memberId}/redemptions`, { reward_id: held.reward_id, request_id: 'e2e-coupon-3' })
    const code2 = other.redemption.code
    await input(page, 'verify-code').fill(code2)
    await page.getByTestId('verify-lookup').click()
    await page.getByTestId('verify-status').getByText('未使用').waitFor({ timeout: T })
    await api(server.base, owner, 'POST', '/api/admin/v1/coupons/verify', { code: code2, request_id: 'other-till', store: '二号收银台' })
    await page.getByTestId('verify-confirm').click()
    await page.getByRole('dialog', { name: '确认核销' }).getByRole('button', { name: '确认核销' }).click()
    const refused = page.getByTestId('verify-refused')
    await refused.waitFor({ timeout: T })
    assert.match(await refused.innerText(), /核销被拒绝/)
    assert.match(await refused.innerText(), /二号收银台/)
    held = await api(server.base, owner, 'GET', `/api/admin/v1/coupons/${code2}`)
    assert.equal(held.status, 'used')
    assert.equal(held.used_store, '二号收银台')
    await checkA11y(page, 'verify refused')
    await shot(page, 'r04-verify-refused')

    // Looking up a used coupon says it cannot be verified, with no button.
    await input(page, 'verify-code').fill(coupon)
    await page.getByTestId('verify-lookup').click()
    await page.getByTestId('verify-cannot').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('verify-confirm').count(), 0)

    // The state filter (in the URL).
    await page.getByTestId('filter-status').click()
    await page.getByRole('option', { name: '未使用' }).click()
    await page.waitForURL(/status=issued/)
    await page.getByTestId('coupons').locator('tr', { hasText: coupon }).waitFor({ state: 'detached', timeout: T })
    await shot(page, 'r05-coupons-issued')
    assert.deepEqual(problems, [])
  })

  it('shows the messages a member received and their stage history', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/members/${memberId}?tab=messages`)
    const msgs = page.getByTestId('member-messages')
    await msgs.locator('tr', { hasText: '新品上市提醒' }).waitFor({ timeout: T })
    assert.match(await msgs.innerText(), /模板消息|已发送|已送达/)
    await checkA11y(page, 'member messages')
    await shot(page, 'r06-member-messages')
    await page.getByRole('tab', { name: '生命周期变化' }).click()
    const stages = page.getByTestId('member-stages')
    await stages.getByText('首次消费').waitFor({ timeout: T })
    assert.match(await stages.innerText(), /潜在/)
    assert.match(await stages.innerText(), /新客/)
    await checkA11y(page, 'member stages')
    await shot(page, 'r07-member-stages')
    assert.deepEqual(problems, [])
  })

  it('creates a channel QR code and shows its image and figures', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '渠道码' }).click()
    await page.getByText('还没有渠道码').waitFor({ timeout: T })
    await checkA11y(page, 'channels empty')
    await page.getByTestId('channel-create').first().click()
    const form = page.getByTestId('channel-form')
    await form.locator('input').nth(0).fill('南京西路店海报')
    await form.locator('input').nth(1).fill('bad scene!')
    await page.getByTestId('channel-submit').click()
    await form.getByText(/场景值只能用/).waitFor({ timeout: T })
    await form.locator('input').nth(1).fill('store-nanjing')
    await checkA11y(page, 'channel dialog')
    await page.getByTestId('channel-submit').click()
    await page.getByText('渠道码「南京西路店海报」已生成').waitFor({ timeout: T })
    const row = page.getByTestId('channels').locator('tr', { hasText: 'store-nanjing' })
    await row.locator('img').waitFor({ timeout: T })
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=channels] img')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: T })
    // A follower scans it: the figures count them.
    const list = await api(server.base, owner, 'GET', '/api/admin/v1/channels')
    const ch = list.channels.find((c) => c.scene === 'store-nanjing')
    await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { scene: ch.scene })
    await page.reload()
    await page.getByTestId('channels').locator('tr', { hasText: 'store-nanjing' }).waitFor({ timeout: T })
    const figures = await api(server.base, owner, 'GET', '/api/admin/v1/channels')
    assert.equal(figures.channels.find((c) => c.scene === 'store-nanjing').followers, 1)
    await checkA11y(page, 'channels')
    await shot(page, 'r08-channels')
    assert.deepEqual(problems, [])
  })

  it('edits the frequency cap as the API validates it; then every screen in English', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/settings`)
    const cap = page.getByTestId('settings-cap')
    await cap.waitFor({ timeout: T })
    await input(page, 'cap-messages').fill('3')
    await input(page, 'cap-days').fill('14')
    await page.getByTestId('cap-save').click()
    await page.getByText('已保存：每 14 天最多 3 条。').waitFor({ timeout: T })
    const s = await api(server.base, owner, 'GET', '/api/admin/v1/settings')
    assert.deepEqual(s.frequency_cap, { messages: 3, window_days: 14 })
    await checkA11y(page, 'settings cap')
    await shot(page, 'r09-settings-cap')

    // English: switch, and look at each new screen again.
    await page.getByTestId('locale-switch').getByText('EN').click()
    await cap.getByText('Marketing frequency cap').waitFor({ timeout: T })
    await shot(page, 'r10-en-settings')
    await page.goto(`${server.base}/admin/redemptions`)
    await page.getByText('Verify a coupon').waitFor({ timeout: T })
    await checkA11y(page, 'redemptions en')
    await shot(page, 'r11-en-redemptions')
    await page.goto(`${server.base}/admin/channels`)
    await page.getByText('Channel QR codes').first().waitFor({ timeout: T })
    await shot(page, 'r12-en-channels')
    await page.goto(`${server.base}/admin/members/${memberId}?tab=stages`)
    await page.getByTestId('member-stages').getByText('First purchase').waitFor({ timeout: T })
    await shot(page, 'r13-en-member-stages')
    await page.getByRole('tab', { name: 'Messages received' }).click()
    await page.getByTestId('member-messages').locator('tr', { hasText: '新品上市提醒' }).waitFor({ timeout: T })
    await checkA11y(page, 'member messages en')
    await shot(page, 'r14-en-member-messages')
    assert.deepEqual(problems, [])
  })
})
