// A marketer's CRM screens, against the real binary in sandbox mode with
// the WeChat simulator: they edit the win-back program (attempts, interval,
// each attempt's message and an offer), then create a tag rule with the
// segments' rule builder and see how many members would carry the tag.
// Each screen is checked with axe and saved as a screenshot.
//   node --test e2e/crm.test.mjs   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y as axe, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'

const T = 20_000

const input = (page, id) => page.locator(`input[data-testid="${id}"], [data-testid="${id}"] input`).first()

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

describe('crm', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  let regular
  const marketer = { username: 'marketer1', password: 'marketer-pass-1' }

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    await api(server.base, owner, 'POST', '/api/admin/v1/staff', { ...marketer, role: 'marketer' })
    regular = await api(server.base, owner, 'POST', '/api/admin/v1/tags', { name: '常客' })
    // Three followers; one unfollows: the rule "following" matches two.
    const followers = []
    for (const name of ['李雷', '韩梅梅', '王芳']) {
      const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', {})
      await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${f.member_id}`, { name })
      followers.push(f)
    }
    await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/unfollow', { openid: followers[2].openid })
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('edits the win-back program', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, marketer.username, marketer.password)
    await page.getByRole('menuitem', { name: '流失挽回' }).click()
    await page.getByTestId('winback-funnel').waitFor({ timeout: T })
    await page.getByTestId('winback-form').waitFor({ timeout: T })
    // Never saved: DOMAIN's defaults, three attempts a week apart.
    assert.equal(await input(page, 'winback-attempts').inputValue(), '3')
    assert.equal(await input(page, 'winback-interval').inputValue(), '7')
    await page.getByTestId('winback-sequences').getByText('启用上方的挽回计划').waitFor({ timeout: T })

    await input(page, 'winback-attempts').fill('2')
    await input(page, 'winback-attempts').press('Tab')
    await input(page, 'winback-interval').fill('5')
    await input(page, 'winback-interval').press('Tab')
    await page.getByTestId('winback-step-3').waitFor({ state: 'detached', timeout: T })
    assert.match(await page.getByTestId('winback-words').innerText(), /每隔 5 天再发一次，共 2 次/)
    await input(page, 'winback-step-1-first').fill('{{name}}，好久不见')
    const second = page.getByTestId('winback-step-2')
    await second.getByText('赠送积分').click()
    await input(page, 'winback-step-2-points').fill('50')
    await input(page, 'winback-step-2-points').press('Tab')
    await page.getByTestId('winback-enabled').click()
    await page.getByTestId('winback-save').click()
    await page.getByText('已保存挽回计划（已启用）').waitFor({ timeout: T })

    const saved = await api(server.base, owner, 'GET', '/api/admin/v1/win-back')
    assert.equal(saved.enabled, true)
    assert.equal(saved.max_attempts, 2)
    assert.equal(saved.interval_days, 5)
    assert.equal(saved.steps.length, 2)
    assert.equal(saved.steps[0].message.fields.first, '{{name}}，好久不见')
    assert.equal(saved.steps[0].offer, undefined)
    assert.equal(saved.steps[1].offer.points, 50)
    await page.getByTestId('winback-sequences').getByText('下一次挽回运行时进入').waitFor({ timeout: T })
    await checkA11y(page, 'win-back')
    await shot(page, 'win-back')
    assert.deepEqual(problems, [])
  })

  it('creates a tag rule with the rule builder and sees its count', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, marketer.username, marketer.password)
    await page.getByRole('menuitem', { name: '自动标签' }).click()
    await page.getByText('还没有标签规则').waitFor({ timeout: T })
    await page.getByTestId('tagrule-new').click()
    await page.getByTestId('tagrule-form').waitFor({ timeout: T })
    await page.getByTestId('tagrule-tag').getByText('常客').waitFor({ timeout: T })

    await page.getByTestId('add-cond').first().click()
    const cond = page.getByTestId('cond-tagrule-0')
    await pick(page, cond.getByTestId('cond-field'), '关注状态')
    await pick(page, cond.getByTestId('cond-value'), '已关注')
    await page.keyboard.press('Escape')

    const rule = { all: [{ field: 'follow_status', op: 'eq', value: 'following' }] }
    const fromApi = await api(server.base, owner, 'POST', '/api/admin/v1/tag-rules/preview', { rule, tag_id: regular.id })
    assert.equal(fromApi.count, 2)
    await page.getByTestId('tagrule-count').getByText('2', { exact: true }).waitFor({ timeout: T })
    await page.getByTestId('tagrule-change').getByText('新增 2 位').waitFor({ timeout: T })
    await checkA11y(page, 'tag-rule-edit')
    await shot(page, 'tag-rule-edit')

    await page.getByTestId('tagrule-save').click()
    await page.getByText('已保存标签「常客」的规则').waitFor({ timeout: T })
    const { tag_rules: rules } = await api(server.base, owner, 'GET', '/api/admin/v1/tag-rules')
    assert.equal(rules.length, 1)
    assert.equal(rules[0].tag_id, regular.id)
    assert.deepEqual(rules[0].rule, rule.all[0], 'one condition, as the builder writes it')
    const { tags } = await api(server.base, owner, 'GET', '/api/admin/v1/tags')
    assert.equal(tags.find((x) => x.id === regular.id).member_count, 2)

    await page.keyboard.press('Escape')
    const table = page.getByTestId('tagrule-table')
    await table.getByText('常客').waitFor({ timeout: T })
    await table.locator('.el-table__row').getByText('2', { exact: true }).waitFor({ timeout: T })
    await checkA11y(page, 'tag-rules')
    await shot(page, 'tag-rules')

    // Deleting asks first and says the tag stays on its members.
    await table.getByRole('button', { name: '删除' }).click()
    await page.locator('.el-message-box').getByText('标签会保留在现有的 2 位会员身上').waitFor({ timeout: T })
    await page.locator('.el-message-box').getByRole('button', { name: '删除' }).click()
    await page.getByText('已删除标签「常客」的规则').waitFor({ timeout: T })
    assert.equal((await api(server.base, owner, 'GET', '/api/admin/v1/tag-rules')).tag_rules.length, 0)
    const after = (await api(server.base, owner, 'GET', '/api/admin/v1/tags')).tags
    assert.equal(after.find((x) => x.id === regular.id).member_count, 2, 'the tag stays on its members')
    assert.deepEqual(problems, [])
  })
})
