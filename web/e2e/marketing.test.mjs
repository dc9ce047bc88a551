// What a marketer does in the admin panel, end to end, against the real
// binary in sandbox mode with the WeChat simulator: build a segment by
// clicking, compose a campaign with a preview on a real member, dry-run it,
// send it and watch it complete, pause and resume a larger one, read the
// report, see a birthday rule's next sends and the calendar. Each screen is
// checked with axe and saved as a screenshot.
//   npm run e2e   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y as axe, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'

const T = 20_000 // the longest wait for a screen
const LONG = 150_000 // a campaign of 150 members at the test's send rate (3 a second)

const input = (page, id) => page.locator(`input[data-testid="${id}"], [data-testid="${id}"] input`).first()

/** The local date in Shanghai (the demo merchant's zone), n days from now. */
function shanghaiDate(n = 0) {
  const d = new Date(Date.now() + n * 86400_000 + 8 * 3600_000)
  return d.toISOString().slice(0, 10)
}

/** checkA11y runs axe once the toasts have gone (one fading out is half transparent). */
async function checkA11y(page, screen) {
  await page.locator('.el-message').first().waitFor({ state: 'detached', timeout: T })
  await axe(page, screen)
}

/** pick opens an Element Plus select and clicks an option by its text. */
async function pick(page, select, option) {
  await select.click()
  await page.locator('.el-select-dropdown:visible .el-select-dropdown__item', { hasText: option }).first().click()
}

describe('marketing', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  const members = [] // the first six followers: [id, name, openid]
  let vipTag
  let segmentId
  let campaignId

  before(async () => {
    // A slow send rate, so a campaign of a few hundred members runs long
    // enough to pause.
    ;[server, browser] = await Promise.all([startServer({ env: { LOYALTY_SEND_RATE: '3' } }), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    // Quiet hours that never hold these sends (they start two hours from now).
    const h = (new Date().getUTCHours() + 8) % 24
    const hh = (n) => `${String((h + n) % 24).padStart(2, '0')}:00`
    await api(server.base, owner, 'PATCH', '/api/admin/v1/settings', { quiet_hours: { start: hh(2), end: hh(4) } })
    vipTag = await api(server.base, owner, 'POST', '/api/admin/v1/tags', { name: 'VIP' })
    const names = ['李雷', '韩梅梅', '', '王芳', '赵强', '刘洋']
    for (const name of names) {
      const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', {})
      if (name) await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${f.member_id}`, { name })
      members.push([f.member_id, name, f.openid])
    }
    // Four VIPs, one of whom unfollows: the segment "following VIPs" has three.
    await api(server.base, owner, 'POST', `/api/admin/v1/tags/${vipTag.id}/assign`, { member_ids: members.slice(0, 4).map(([id]) => id) })
    await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/unfollow', { openid: members[3][2] })
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('builds a segment by clicking and its count matches the API', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '人群' }).click()
    await page.getByTestId('segment-new').click()
    await page.getByTestId('add-cond').first().waitFor({ timeout: T })

    // following AND has the tag VIP.
    await page.getByTestId('add-cond').first().click()
    const first = page.getByTestId('cond-root-0')
    await pick(page, first.getByTestId('cond-field'), '关注状态')
    await pick(page, first.getByTestId('cond-value'), '已关注')
    await page.getByTestId('add-cond').first().click()
    const second = page.getByTestId('cond-root-1')
    await pick(page, second.getByTestId('cond-field'), '标签')
    await pick(page, second.getByTestId('cond-value'), 'VIP')
    await page.keyboard.press('Escape')

    const rule = { all: [{ field: 'follow_status', op: 'eq', value: 'following' }, { field: 'tags', op: 'has_any', value: [vipTag.id] }] }
    const fromApi = await api(server.base, owner, 'POST', '/api/admin/v1/segments/preview', { rule })
    assert.equal(fromApi.count, 3)
    await page.getByTestId('segment-count').getByText(String(fromApi.count), { exact: true }).waitFor({ timeout: T })
    const sample = page.getByTestId('segment-sample')
    await sample.getByText('李雷').waitFor({ timeout: T })
    assert.equal(await sample.getByText('王芳').count(), 0, 'the unfollowed VIP is not in the sample')

    await input(page, 'segment-name').fill('关注中的 VIP')
    await page.getByTestId('segment-save').click()
    await page.waitForURL(/\/admin\/segments\/\d+$/, { timeout: T })
    segmentId = Number(/segments\/(\d+)$/.exec(page.url())[1])
    const saved = await api(server.base, owner, 'GET', `/api/admin/v1/segments/${segmentId}`)
    assert.deepEqual(saved.rule, rule)
    assert.equal(saved.cached_count, 3)
    await checkA11y(page, 'segment builder')
    await shot(page, 'm01-segment-builder')

    // The members list of the segment, and the saved segments with their counts.
    await page.getByTestId('segment-members-link').click()
    const table = page.getByTestId('segment-members-table')
    await table.getByText('韩梅梅').waitFor({ timeout: T })
    assert.equal(await table.locator('tbody tr').count(), 3)
    await page.getByRole('menuitem', { name: '人群' }).click()
    const row = page.getByTestId('segments-table').locator('tr', { hasText: '关注中的 VIP' })
    await row.waitFor({ timeout: T })
    assert.match(await row.innerText(), /\b3\b/)
    await checkA11y(page, 'segments')
    await shot(page, 'm02-segments')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('composes a campaign with a preview on a real member, dry-runs and sends it', async () => {
    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/campaigns/new?segment=${segmentId}`)
    await input(page, 'composer-name').fill('会员日问候')
    await input(page, 'field-first').waitFor({ timeout: T })
    await input(page, 'field-first').fill('您好，')
    // Insert the name variable (with its fallback) under the first field.
    await page.locator('.el-form-item', { has: page.locator('[data-testid="field-first"]') }).getByRole('button', { name: '+姓名' }).click()
    await input(page, 'field-keyword2').fill('会员日全场 8 折')
    assert.equal(await input(page, 'field-first').inputValue(), '您好，{{name|亲爱的会员}}')

    const [lilei] = members[0]
    const [nameless] = members[2]
    await input(page, 'preview-member').fill(String(lilei))
    const preview = page.getByTestId('composer-preview')
    await preview.getByText('您好，李雷').waitFor({ timeout: T })
    await input(page, 'preview-member').fill(String(nameless))
    await preview.getByText('您好，亲爱的会员').waitFor({ timeout: T })
    assert.match(await preview.innerText(), /会员日全场 8 折/)
    assert.match(await page.getByTestId('composer-limits').innerText(), /频次上限/)
    await checkA11y(page, 'composer')
    await page.evaluate(() => window.scrollTo(0, 0))
    await shot(page, 'm03-composer-preview')

    await page.getByTestId('composer-save').click()
    await page.waitForURL(/\/admin\/campaigns\/\d+$/, { timeout: T })
    campaignId = Number(/campaigns\/(\d+)$/.exec(page.url())[1])
    await page.getByTestId('campaign-status').getByText('草稿').waitFor({ timeout: T })

    // Dry run: three following VIPs would get it (less any holdout).
    await page.getByTestId('campaign-dry-run').click()
    const dry = await api(server.base, owner, 'GET', `/api/admin/v1/campaigns/${campaignId}/dry-run`)
    assert.equal(dry.targeted, 3)
    await page.getByTestId('dry-result').getByText(`将收到：${dry.would_get} 位`).waitFor({ timeout: T })
    await checkA11y(page, 'campaign draft')
    await shot(page, 'm04-campaign-dry-run')

    // Send now; the progress bar reaches completion.
    await page.getByTestId('campaign-schedule').click()
    await page.getByRole('dialog').getByRole('button', { name: '发送' }).click()
    await page.getByTestId('campaign-status').getByText('已完成').waitFor({ timeout: LONG })
    assert.equal(await page.getByTestId('n-sent').innerText(), String(dry.would_get))
    assert.equal(await page.getByTestId('n-remaining').innerText(), '0')
    assert.equal(await page.getByTestId('campaign-progress').getByRole('progressbar').getAttribute('aria-valuenow'), '100')
    await checkA11y(page, 'campaign progress')
    await shot(page, 'm05-campaign-completed')

    // The simulator recorded the messages, rendered for each member.
    const { sent } = await api(server.base, owner, 'GET', '/api/admin/v1/sandbox/sent')
    const templates = sent.filter((s) => s.kind === 'template')
    assert.equal(templates.length, dry.would_get)
    assert.ok(templates.some((s) => s.data.first === '您好，李雷'), JSON.stringify(templates))
    assert.ok(templates.every((s) => s.data.keyword2 === '会员日全场 8 折'))

    // The deliveries tab lists them.
    await page.getByRole('tab', { name: '发送明细' }).click()
    const rows = page.getByTestId('deliveries-table').locator('tbody tr')
    await rows.first().waitFor({ timeout: T })
    const holdout = dry.holdout
    assert.equal(await rows.count(), dry.would_get + holdout)
    await checkA11y(page, 'deliveries')
    await shot(page, 'm06-deliveries')

    // The report, with lift against the holdout (none here: too few members).
    await page.getByRole('tab', { name: '效果报告' }).click()
    await page.getByTestId('campaign-report').waitFor({ timeout: T })
    assert.match(await page.getByTestId('report-lift').innerText(), /提升|无法计算/)
    await checkA11y(page, 'report')
    await shot(page, 'm07-report')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('pauses and resumes a larger campaign; editing it while it runs is refused', async () => {
    for (let i = 0; i < 150; i++) await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', {})
    const c = await api(server.base, owner, 'POST', '/api/admin/v1/campaigns', {
      name: '全员周末提醒',
      channel: 'template',
      template_id: 'TPL_POINTS_CHANGED',
      message: { fields: { first: '{{name|亲爱的会员}}，周末见' } },
      target: { all_members: true },
      holdout_pct: 10,
      schedule: { kind: 'now' },
    })
    await api(server.base, owner, 'POST', `/api/admin/v1/campaigns/${c.id}/schedule`)

    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/campaigns/${c.id}`)
    await page.getByTestId('campaign-pause').click({ timeout: T })
    await page.getByTestId('campaign-status').getByText('已暂停').waitFor({ timeout: T })
    const paused = await api(server.base, owner, 'GET', `/api/admin/v1/campaigns/${c.id}/progress`)
    assert.equal(paused.campaign.status, 'paused')
    assert.ok(paused.progress.remaining > 0, JSON.stringify(paused.progress))
    await checkA11y(page, 'campaign paused')
    await shot(page, 'm08-campaign-paused')

    // An edit of a started campaign is refused with the API's words.
    await page.goto(`${server.base}/admin/campaigns/${c.id}/edit`)
    await input(page, 'composer-name').waitFor({ timeout: T })
    await page.getByTestId('composer-save').click()
    await page.getByTestId('composer-error').getByText(/cannot be edited/).waitFor({ timeout: T })
    await shot(page, 'm09-edit-refused')

    await page.goto(`${server.base}/admin/campaigns/${c.id}`)
    await page.getByTestId('campaign-resume').click({ timeout: T })
    await page.getByTestId('campaign-status').getByText('已完成').waitFor({ timeout: LONG })
    const done = await api(server.base, owner, 'GET', `/api/admin/v1/campaigns/${c.id}/progress`)
    assert.equal(done.progress.remaining, 0)
    assert.equal(await page.getByTestId('n-planned').innerText(), String(done.progress.planned))
    await shot(page, 'm10-campaign-resumed-completed')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('shows a member whose birthday is today in the birthday rule\'s next sends', async () => {
    const [id] = members[1] // 韩梅梅
    const [month, day] = shanghaiDate().slice(5).split('-').map(Number)
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${id}`, { birthday: { month, day, year: 1990 } })

    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '关怀' }).click()
    await page.getByTestId('care-new').click()
    await page.getByTestId('care-form').waitFor({ timeout: T })
    await page.getByTestId('care-enabled').click()
    await page.getByTestId('care-save').click()
    const next = page.getByTestId('care-next')
    const today = next.locator(`li[data-date="${shanghaiDate()}"]`)
    await today.waitFor({ timeout: T })
    assert.match(await today.innerText(), /今天/)
    assert.match(await today.innerText(), /韩梅梅/)
    const rules = await api(server.base, owner, 'GET', '/api/admin/v1/care-rules')
    assert.equal(rules.care_rules.length, 1)
    assert.equal(rules.care_rules[0].enabled, true)
    await checkA11y(page, 'care rule')
    await shot(page, 'm11-care-next-sends')
    assert.deepEqual(problems, [])
    await context.close()
  })

  it('shows a scheduled campaign on its day in the calendar', async () => {
    const day = shanghaiDate(3)
    const c = await api(server.base, owner, 'POST', '/api/admin/v1/campaigns', {
      name: '周年庆预告',
      channel: 'template',
      template_id: 'TPL_WELCOME',
      message: { fields: { first: '周年庆即将开始' } },
      target: { segment_id: segmentId },
      schedule: { kind: 'at', send_at: `${day}T10:30:00+08:00` },
    })
    await api(server.base, owner, 'POST', `/api/admin/v1/campaigns/${c.id}/schedule`)

    const { page, problems, context } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.goto(`${server.base}/admin/calendar?month=${day.slice(0, 7)}`)
    const cell = page.getByTestId('calendar').locator(`[data-date="${day}"]`)
    await cell.getByText('周年庆预告').waitFor({ timeout: T })
    assert.match(await cell.innerText(), /10:30/)
    await checkA11y(page, 'calendar')
    await shot(page, 'm12-calendar')

    await page.getByRole('menuitem', { name: '营销活动' }).click()
    await page.getByTestId('campaigns-table').getByText('周年庆预告').waitFor({ timeout: T })
    await checkA11y(page, 'campaigns')
    await shot(page, 'm13-campaigns')
    assert.deepEqual(problems, [])
    await context.close()
  })
})
