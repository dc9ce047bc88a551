// What a merchant does in the admin panel, end to end, against the real
// binary: each scenario asserts what the person sees and what the API then
// holds, checks the screen with axe and saves a screenshot.
//   npm run e2e   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { api, apiLogin, checkA11y, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'

const T = 20_000 // the longest wait for a screen

// Element Plus puts attributes of el-input on the <input> itself, and those
// of el-input-number on its wrapper: this finds the field either way.
const input = (page, id) => page.locator(`input[data-testid="${id}"], [data-testid="${id}"] input`).first()

describe('admin panel', { concurrency: 1 }, () => {
  let server
  let browser
  let owner // token of the demo owner, for setting up and checking through the API
  let follower // the member the sandbox follow made

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('logs in, after a wrong password and a throttled login', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, 'not-the-password')
    const error = page.getByTestId('login-error')
    await error.waitFor({ timeout: T })
    assert.match(await error.innerText(), /用户名或密码不正确/)
    await checkA11y(page, 'login')
    await shot(page, '01-login-wrong-password')

    // Another username guessed until the throttle locks it: the wait is shown.
    await page.locator('input[name=username]').fill('nobody')
    for (let i = 0; i < 10; i++) {
      await page.locator('input[name=password]').fill(`guess-${i}`)
      await page.locator('button[type=submit]').click()
      await page.waitForFunction(() => !document.querySelector('button[type=submit].is-loading'))
      if (/尝试次数过多/.test(await error.innerText())) break
    }
    assert.match(await error.innerText(), /尝试次数过多.*\d+ 秒后再试/)
    await shot(page, '02-login-throttled')

    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    assert.match(await page.getByTestId('current-user').innerText(), /demo（所有者）/)
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('finds a follower simulated in the sandbox', async () => {
    const followed = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { scene: 'spring-poster' })
    follower = followed.member_id
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${follower}`, { name: '王小明', phone: '13812345678' })

    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '会员', exact: true }).click()
    const table = page.getByTestId('members-table')
    await table.getByText('王小明').waitFor({ timeout: T })

    // Search by name prefix: the URL holds the filter.
    await input(page, 'filter-q').fill('王小')
    await page.getByTestId('search').click()
    await page.waitForURL(/q=%E7%8E%8B%E5%B0%8F/)
    await table.getByText('王小明').waitFor({ timeout: T })
    const row = table.locator('tr', { hasText: '王小明' })
    assert.match(await row.innerText(), /13812345678/)
    assert.match(await row.innerText(), /spring-poster/)
    assert.match(await row.innerText(), /已关注/)
    await checkA11y(page, 'members')
    await shot(page, '03-members-found')

    // Tag the selected member in bulk.
    const tag = await api(server.base, owner, 'POST', '/api/admin/v1/tags', { name: 'VIP' })
    await page.reload()
    await table.getByText('王小明').waitFor({ timeout: T })
    await row.locator('.el-checkbox').click()
    await page.getByTestId('bulk-tag-select').click()
    await page.getByRole('option', { name: 'VIP' }).click()
    await page.getByRole('button', { name: /批量打标签/ }).click()
    await page.getByText('已为 1 位会员添加标签「VIP」').waitFor({ timeout: T })
    await row.getByText('VIP').waitFor({ timeout: T })
    const tagged = await api(server.base, owner, 'GET', `/api/admin/v1/members/${follower}`)
    assert.deepEqual(tagged.tags.map((x) => x.id), [tag.id])

    // Export what the filter shows, with progress, as a CSV download.
    const download = page.waitForEvent('download')
    await page.getByTestId('export').click()
    const file = await download
    assert.match(file.suggestedFilename(), /^members-\d{8}-\d{6}\.csv$/)
    const csv = await readFile(await file.path(), 'utf8')
    const lines = csv.trim().split('\n')
    assert.equal(lines.length, 2, csv)
    assert.match(lines[1], /王小明,13812345678,/)
    assert.match(lines[1], /VIP/)
    await page.getByText('导出完成：1 位会员').waitFor({ timeout: T })

    // Nothing matches: the empty state says so.
    await input(page, 'filter-q').fill('赵钱孙')
    await page.getByTestId('search').click()
    await page.getByText('没有符合条件的会员').waitFor({ timeout: T })
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('adjusts a member\'s points and shows the ledger and the new balance', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/members/${follower}`)
    await page.getByTestId('member-phone').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('points-available').innerText(), '0')
    await checkA11y(page, 'member')

    await page.getByTestId('adjust-open').click()
    await input(page, 'adjust-points').fill('200')
    await input(page, 'adjust-reason').fill('客诉补偿')
    await checkA11y(page, 'adjust points dialog')
    await page.getByTestId('adjust-submit').click()
    await page.getByText('已为会员增加 200 积分，当前可用 200。').waitFor({ timeout: T })
    await page.getByRole('tab', { name: '积分' }).click()
    await page.waitForURL(/tab=points/)
    const ledger = page.getByTestId('ledger')
    await ledger.getByText('客诉补偿').waitFor({ timeout: T })
    const row = ledger.locator('tr', { hasText: '客诉补偿' })
    assert.match(await row.innerText(), /手动调整/)
    assert.match(await row.innerText(), /\+200/)
    assert.equal(await page.getByTestId('points-available').innerText(), '200')
    await shot(page, '04-member-points-adjusted')

    const held = await api(server.base, owner, 'GET', `/api/admin/v1/members/${follower}/points`)
    assert.equal(held.summary.available, 200)
    assert.equal(held.entries[0].reason, '客诉补偿')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('registers an order and refunds part of it', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/members/${follower}`)
    await page.getByTestId('register-order').click()
    await page.getByTestId('order-form').waitFor({ timeout: T })
    assert.equal(await input(page, 'order-member').inputValue(), String(follower))
    // The API refuses a non-ASCII order number: its reason shows next to the field.
    await input(page, 'order-external-id').fill('订单-001')
    await input(page, 'order-amount').fill('128.50')
    await page.getByTestId('order-submit').click()
    const fieldError = page.getByTestId('order-form').locator('.el-form-item.is-error', { has: page.getByTestId('order-external-id') })
    await fieldError.locator('.el-form-item__error').waitFor({ timeout: T })
    assert.match(await fieldError.locator('.el-form-item__error').innerText(), /visible ASCII/)
    assert.match(await page.locator('.error-alert').innerText(), /填写的内容有误/)
    await shot(page, '05a-order-field-error')
    await input(page, 'order-external-id').fill('POS-20261203-001')
    await input(page, 'order-amount').fill('128.50')
    await page.getByTestId('order-submit').click()
    await page.getByText('订单已登记，会员获得 128 积分').waitFor({ timeout: T })
    await page.waitForURL(/\/admin\/orders\/POS-20261203-001/)
    assert.equal(await page.getByTestId('order-amount-shown').innerText(), '¥128.50')
    await checkA11y(page, 'order')

    await input(page, 'refund-amount').fill('28.50')
    await page.getByTestId('refund-submit').click()
    const confirm = page.getByRole('dialog', { name: '退款' })
    await confirm.waitFor({ timeout: T })
    assert.match(await confirm.innerText(), /确定退款 ¥28.50 吗/)
    await confirm.getByRole('button', { name: '退款' }).click()
    await page.getByText('已退款 ¥28.50').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('order-refunded').innerText(), '¥28.50')
    assert.match(await page.getByTestId('refunds').innerText(), /POS-20261203-001-R1/)
    await shot(page, '05-order-refunded')

    const order = await api(server.base, owner, 'GET', '/api/admin/v1/orders/POS-20261203-001')
    assert.equal(order.amount_fen, 12850)
    assert.equal(order.refunded_fen, 2850)
    assert.equal(order.refunds.length, 1)
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('creates a reward and redeems it for a member; the member redeems too', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '奖励' }).click()
    await page.getByText('还没有奖励').waitFor({ timeout: T })
    await page.getByTestId('reward-create').click()
    await input(page, 'reward-name').fill('拿铁一杯')
    await input(page, 'reward-cost').fill('100')
    await checkA11y(page, 'reward dialog')
    await page.getByTestId('reward-submit').click()
    await page.getByText('奖励「拿铁一杯」已创建').waitFor({ timeout: T })
    const row = page.getByTestId('rewards-table').locator('tr', { hasText: '拿铁一杯' })
    assert.match(await row.innerText(), /100/)
    assert.match(await row.innerText(), /上架/)
    await checkA11y(page, 'rewards')
    await shot(page, '06-reward-created')

    // A member with 350 points redeems once in the mini-program.
    const rewards = await api(server.base, owner, 'GET', '/api/admin/v1/rewards')
    const reward = rewards.rewards.find((r) => r.name === '拿铁一杯')
    const { code } = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/mp-login-code', {})
    const mp = await api(server.base, null, 'POST', `/api/mp/v1/${server.merchant}/login`, { code })
    const memberId = mp.member.id
    await api(server.base, owner, 'POST', `/api/admin/v1/members/${memberId}/points/adjustments`, { points: 350, reason: '开业赠送' })
    await api(server.base, mp.token, 'POST', `/api/member/v1/${server.merchant}/rewards/${reward.id}/redeem`, { request_id: 'e2e-redeem-1' })

    // Staff redeem it for the member at the till, from the rewards page: a
    // wrong member id first, whose error is shown.
    await page.getByTestId(`redeem-for-${reward.id}`).click()
    const dialog = page.getByRole('dialog', { name: '代会员兑换奖励' })
    await dialog.waitFor({ timeout: T })
    assert.match(await dialog.innerText(), /将从会员的可用积分中扣除 100 积分/)
    await input(page, 'redeem-member').fill('999999')
    await page.getByTestId('redeem-submit').click()
    await dialog.locator('.error-alert').waitFor({ timeout: T })
    assert.match(await dialog.locator('.error-alert').innerText(), /找不到/)
    await input(page, 'redeem-member').fill(String(memberId))
    await checkA11y(page, 'redeem dialog')
    await shot(page, '07a-redeem-for-member')
    await page.getByTestId('redeem-submit').click()
    await page.getByText('已为会员兑换「拿铁一杯」，扣除 100 积分。').waitFor({ timeout: T })

    // And once more from the member's page, choosing the reward.
    await page.goto(`${server.base}/admin/members/${memberId}`)
    await page.getByTestId('redeem-open').click()
    await page.getByTestId('redeem-reward').click()
    await page.getByRole('option', { name: /拿铁一杯/ }).click()
    await page.getByTestId('redeem-submit').click()
    await page.getByText('已为会员兑换「拿铁一杯」，扣除 100 积分。').waitFor({ timeout: T })
    await page.waitForURL(/tab=redemptions/)
    const redemptions = page.getByTestId('member-redemptions')
    await redemptions.locator('tr', { hasText: '拿铁一杯' }).nth(2).waitFor({ timeout: T })
    assert.match(await redemptions.innerText(), /已兑换/)
    await page.getByTestId('points-available').getByText('50').waitFor({ timeout: T })
    await shot(page, '07-member-redemption')

    const held = await api(server.base, owner, 'GET', `/api/admin/v1/redemptions?member_id=${memberId}`)
    assert.equal(held.redemptions.length, 3)
    const points = await api(server.base, owner, 'GET', `/api/admin/v1/members/${memberId}/points`)
    assert.equal(points.summary.available, 50)
    const audit = await api(server.base, owner, 'GET', '/api/admin/v1/audit?action=redemption.create')
    assert.equal(audit.entries.length, 2)
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('sets up tiers and the points rules, with a sample order explained', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '会员等级' }).click()
    await page.getByText('还没有会员等级').waitFor({ timeout: T })
    await page.getByTestId('tier-create').click()
    await input(page, 'tier-name').fill('银卡')
    await input(page, 'tier-threshold').fill('1000')
    await input(page, 'tier-multiplier').fill('150')
    await checkA11y(page, 'tier dialog')
    await page.getByTestId('tier-submit').click()
    await page.getByText('等级「银卡」已创建').waitFor({ timeout: T })
    const tierRow = page.getByTestId('tiers-table').locator('tr', { hasText: '银卡' })
    assert.match(await tierRow.innerText(), /¥1,000\.00/)
    assert.match(await tierRow.innerText(), /×1\.50/)
    await checkA11y(page, 'tiers')
    await shot(page, '13-tiers')

    await page.getByRole('menuitem', { name: '积分规则' }).click()
    await page.getByText('还没有保存过规则').waitFor({ timeout: T })
    // The sample order: ¥128.50 at 1 point per yuan, silver ×1.5, birthday ×2.
    await input(page, 'rules-birthday').fill('200')
    await input(page, 'rules-pending').fill('7')
    await page.getByTestId('sample-tier').click()
    await page.getByRole('option', { name: /银卡/ }).click()
    await page.getByTestId('rules-sample').getByText('在会员的生日月下单').click()
    await page.getByTestId('sample-result').getByText('这笔订单得 385 积分').waitFor({ timeout: T })
    const steps = await page.getByTestId('sample-steps').innerText()
    assert.match(steps, /¥128\.50 按比例折合 128\.5 积分/)
    assert.match(steps, /乘以等级倍率 150%/)
    assert.match(steps, /乘以生日月倍率 200%/)
    assert.match(await page.getByTestId('rules-sample').innerText(), /下单后冻结 7 天再可使用/)
    await checkA11y(page, 'points rules')
    await shot(page, '14-points-rules')
    await page.getByTestId('rules-save').click()
    await page.getByText('积分规则已保存（第 1 版）').waitFor({ timeout: T })
    await page.getByTestId('rules-version').getByText(/当前为第 1 版/).waitFor({ timeout: T })
    const rules = await api(server.base, owner, 'GET', '/api/admin/v1/points/rules')
    assert.equal(rules.version, 1)
    assert.equal(rules.rules.birthday_multiplier_pct, 200)
    assert.equal(rules.rules.pending_days, 7)
    assert.equal(rules.rules.earn.per_fen, 100)
    // Put the pending days back, so later scenarios' orders earn at once.
    await api(server.base, owner, 'PATCH', '/api/admin/v1/points/rules', { pending_days: 0 })
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('shows a viewer masked phones and no buttons it cannot use', async () => {
    const staff = await api(server.base, owner, 'POST', '/api/admin/v1/staff', { username: 'viewer1', role: 'viewer', password: 'viewer-pass-1' })
    assert.equal(staff.role, 'viewer')
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, 'viewer1', 'viewer-pass-1')
    await page.getByTestId('kpis').waitFor({ timeout: T })
    assert.match(await page.getByTestId('current-user').innerText(), /viewer1（只读成员）/)
    await page.getByRole('menuitem', { name: '会员', exact: true }).click()
    const table = page.getByTestId('members-table')
    await table.getByText('王小明').waitFor({ timeout: T })
    const row = table.locator('tr', { hasText: '王小明' })
    assert.match(await row.innerText(), /138\*\*\*\*5678/)
    assert.doesNotMatch(await row.innerText(), /13812345678/)
    assert.equal(await page.getByTestId('export').count(), 0)
    assert.equal(await page.getByTestId('bulk-tag-select').count(), 0)
    await checkA11y(page, 'members (viewer)')
    await shot(page, '08-viewer-members')

    await page.goto(`${server.base}/admin/members/${follower}`)
    await page.getByTestId('member-phone').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('member-phone').innerText(), '138****5678')
    assert.equal(await page.getByTestId('adjust-open').count(), 0)
    assert.equal(await page.getByTestId('register-order').count(), 0)
    assert.equal(await page.getByTestId('redeem-open').count(), 0)
    await shot(page, '09-viewer-member')

    await page.getByRole('menuitem', { name: '奖励' }).click()
    await page.getByTestId('rewards-table').getByText('拿铁一杯').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('reward-create').count(), 0)
    assert.equal(await page.locator('[data-testid^="redeem-for-"]').count(), 0)

    // The rules and tiers read, but cannot be changed.
    await page.getByRole('menuitem', { name: '积分规则' }).click()
    await page.getByTestId('rules-form').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('rules-save').count(), 0)
    assert.equal(await input(page, 'rules-pending').isDisabled(), true)
    await page.getByRole('menuitem', { name: '会员等级' }).click()
    await page.getByTestId('tiers-table').getByText('银卡').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('tier-create').count(), 0)
    assert.equal(await page.locator('[data-testid^="tier-edit-"]').count(), 0)
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('manages staff and API keys, reads the audit log, and tests the WeChat connection', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })

    // A new colleague: the generated password is shown once; then disabled.
    await page.getByRole('menuitem', { name: '员工与角色' }).click()
    const staffTable = page.getByTestId('staff-table')
    await staffTable.getByText('viewer1').waitFor({ timeout: T })
    await page.getByTestId('staff-create').click()
    await input(page, 'staff-username').fill('cashier1')
    await page.getByTestId('staff-role').click()
    await page.getByRole('option', { name: '营销人员' }).click()
    await checkA11y(page, 'staff dialog')
    await page.getByTestId('staff-submit').click()
    const password = await page.getByTestId('staff-password').innerText()
    assert.ok(password.length >= 8, password)
    await page.getByRole('button', { name: '我已记下' }).click()
    await apiLogin(server.base, 'cashier1', password) // the shown password works
    await page.getByTestId('staff-toggle-cashier1').click()
    const confirm = page.getByRole('dialog', { name: '停用' })
    assert.match(await confirm.innerText(), /确定停用 cashier1 吗/)
    await confirm.getByRole('button', { name: '停用' }).click()
    await page.getByText('cashier1 已停用').waitFor({ timeout: T })
    // The toast comes with the answer; the table shows it once reloaded.
    await staffTable.locator('tr', { hasText: 'cashier1' }).getByText('已停用').waitFor({ timeout: T })
    await checkA11y(page, 'staff')
    await shot(page, '15-staff')
    const staff = await api(server.base, owner, 'GET', '/api/admin/v1/staff')
    const cashier = staff.staff.find((x) => x.username === 'cashier1')
    assert.equal(cashier.role, 'marketer')
    assert.equal(cashier.disabled, true)

    // An API key for the till: its secret is shown once and works; then revoked.
    await page.getByRole('menuitem', { name: 'API 密钥' }).click()
    await page.getByText('还没有 API 密钥').waitFor({ timeout: T })
    await page.getByTestId('apikey-create').click()
    await input(page, 'apikey-name').fill('门店收银')
    await page.getByTestId('apikey-submit').click()
    const secret = await page.getByTestId('apikey-secret').innerText()
    await checkA11y(page, 'API key shown once')
    await shot(page, '16-apikey-shown-once')
    await api(server.base, secret, 'POST', '/api/admin/v1/orders', { external_id: 'TILL-1', member_id: follower, amount_fen: 1000 })
    await page.getByTestId('apikey-done').click()
    const keyRow = page.getByTestId('apikeys-table').locator('tr', { hasText: '门店收银' })
    await keyRow.getByText('可用').waitFor({ timeout: T })
    assert.match(await keyRow.innerText(), /登记订单与退款/)
    await keyRow.getByRole('button', { name: '吊销' }).click()
    await page.getByRole('dialog', { name: '吊销' }).getByRole('button', { name: '吊销' }).click()
    await page.getByText('密钥「门店收银」已吊销').waitFor({ timeout: T })
    await keyRow.getByText('已吊销').waitFor({ timeout: T })
    await assert.rejects(api(server.base, secret, 'GET', '/api/admin/v1/orders/TILL-1'), /401/)

    // The audit log shows both, and filters by action.
    await page.getByRole('menuitem', { name: '操作日志' }).click()
    const audit = page.getByTestId('audit-table')
    await audit.getByText('吊销 API 密钥').waitFor({ timeout: T })
    assert.match(await audit.innerText(), /创建员工/)
    await input(page, 'audit-action').fill('api_key.')
    await page.getByTestId('audit-search').click()
    await page.waitForURL(/action=api_key\./)
    await audit.getByText('创建 API 密钥').waitFor({ timeout: T })
    assert.doesNotMatch(await audit.innerText(), /创建员工/)
    await checkA11y(page, 'audit log')
    await shot(page, '17-audit')

    // Settings: the connection test says how it went; a change is saved.
    await page.getByRole('menuitem', { name: '设置' }).click()
    await page.getByTestId('wx-test').click()
    const results = page.getByTestId('wx-results')
    await results.waitFor({ timeout: T })
    assert.match(await results.innerText(), /公众号.*连接正常/)
    await checkA11y(page, 'settings')
    await shot(page, '18-settings')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it("exports and erases a member's personal data on request", async () => {
    const followed = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { scene: 'pipl' })
    const id = followed.member_id
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${id}`, { name: '李要删', phone: '13900001111' })
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/members/${id}`)
    await page.getByTestId('member-phone').getByText('13900001111').waitFor({ timeout: T })

    const download = page.waitForEvent('download')
    await page.getByTestId('privacy-export').click()
    const file = await download
    assert.equal(file.suggestedFilename(), `member-${id}-personal-data.json`)
    const doc = await readFile(await file.path(), 'utf8')
    assert.match(doc, /13900001111/)
    assert.match(doc, /李要删/)

    await page.getByTestId('privacy-erase').click()
    const box = page.getByRole('dialog', { name: '删除个人信息' })
    assert.match(await box.innerText(), new RegExp(`请输入会员编号 ${id} 确认`))
    await box.locator('input').fill('1')
    await box.getByRole('button', { name: '删除个人信息' }).click()
    await box.getByText('请输入会员编号以确认').waitFor({ timeout: T })
    await box.locator('input').fill(String(id))
    await checkA11y(page, 'erase confirmation')
    await shot(page, '19-erase-confirm')
    await box.getByRole('button', { name: '删除个人信息' }).click()
    await page.getByText(/已删除该会员的个人信息/).waitFor({ timeout: T })
    await page.getByText(/该会员的个人信息已按 PIPL 删除/).waitFor({ timeout: T })
    assert.equal(await page.getByTestId('privacy-erase').count(), 0)
    const held = await api(server.base, owner, 'GET', `/api/admin/v1/members/${id}`)
    assert.equal(held.phone, null)
    assert.ok(held.erased_at)
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('switches to English, remembers it, and back to Chinese', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByTestId('locale-switch').getByText('EN').click()
    await page.getByRole('menuitem', { name: 'Members' }).waitFor({ timeout: T })
    assert.equal(await page.locator('html').getAttribute('lang'), 'en')
    await page.getByRole('menuitem', { name: 'Members' }).click()
    await page.getByTestId('members-table').getByText('王小明').waitFor({ timeout: T })
    assert.match(await page.getByTestId('members-table').innerText(), /Following/)
    await page.reload()
    await page.getByRole('heading', { name: 'Members' }).waitFor({ timeout: T })
    await checkA11y(page, 'members (English)')
    await shot(page, '10-english')
    await page.getByTestId('locale-switch').getByText('中文').click()
    await page.getByRole('heading', { name: '会员' }).waitFor({ timeout: T })
    assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('fits a tablet: the menu collapses to icons', async () => {
    const { page, problems, context } = await newPage(browser, { width: 820, height: 1180 })
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    const aside = await page.locator('.shell-aside').boundingBox()
    assert.ok(aside && aside.width <= 64, `menu width ${aside?.width}`)
    await page.goto(`${server.base}/admin/members/${follower}`)
    await page.getByTestId('member-phone').waitFor({ timeout: T })
    await shot(page, '11-tablet-member')
    assert.deepEqual(problems, [])
    await context.close()
  })
})

describe('dashboard after demo seed', { concurrency: 1 }, () => {
  let server
  let browser
  before(async () => {
    ;[server, browser] = await Promise.all([startServer({ seedMembers: 400 }), launchBrowser()])
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('renders every chart with data', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('kpi-members').locator('.kpi-value').innerText(), '400')
    for (const chart of ['acquisition', 'lifecycle', 'pyramid', 'rfm', 'cohort', 'liability']) {
      const card = page.getByTestId(`chart-${chart}`)
      await card.locator('canvas').first().waitFor({ timeout: T })
      assert.equal(await card.getByText('暂无数据').count(), 0, `${chart} has no data`)
    }
    await page.waitForTimeout(800) // let the charts' entry animation finish before the screenshot
    await checkA11y(page, 'dashboard')
    await shot(page, '12-dashboard-seeded')

    // The period is in the URL: a colleague opening the link sees the same figures.
    await page.goto(`${server.base}/admin/?from=2026-01-01&to=2026-01-31`)
    await page.getByText('对比 2025-12-01 至 2025-12-31').waitFor({ timeout: T })
    assert.deepEqual(problems, [])
    await context.close()
  })
})
