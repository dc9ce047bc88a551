// Satisfaction surveys end to end, against the real binary in sandbox mode:
// the merchant enables a survey (sent right after an order) and the
// "survey detractor" care rule; a follower buys; the survey goes out
// through the engine and links to the member centre; the member opens it
// from the member centre's home page on a phone, answers (a detractor),
// and a second answer is refused; the panel's results screen shows the
// answer with the member's name linking to their page; the simulator
// recorded one survey and one follow-up. Every screen is checked with axe
// and saved as a screenshot (survey-*.png).
//   node --test e2e/survey.test.mjs   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y as panelA11y, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'
import { phone } from './phone.mjs'

const T = 20_000

/** memberA11y waits for Vant's toasts to finish, then runs axe. */
async function memberA11y(page, screen) {
  await page.waitForFunction(() => [...document.querySelectorAll('.van-toast')].every((t) => getComputedStyle(t).display === 'none'), null, { timeout: T })
  await panelA11y(page, screen)
}

/** waitFor polls check until it returns a truthy value (or time runs out). */
async function waitFor(check, ms) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v || Date.now() > deadline) return v
    await new Promise((r) => setTimeout(r, 500))
  }
}

describe('satisfaction surveys', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  let memberId
  let template
  const openid = 'o_e2e_survey'
  const sentTo = async (marker) => {
    const { sent } = await api(server.base, owner, 'GET', '/api/admin/v1/sandbox/sent')
    return sent.filter((m) => m.touser === openid && m.data?.[template.fields.at(-1)] === marker)
  }

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    // Quiet hours that never hold these sends (they start two hours from now).
    const h = (new Date().getUTCHours() + 8) % 24
    const hh = (n) => `${String((h + n) % 24).padStart(2, '0')}:00`
    await api(server.base, owner, 'PATCH', '/api/admin/v1/settings', { quiet_hours: { start: hh(2), end: hh(4) } })
    template = (await api(server.base, owner, 'GET', '/api/admin/v1/campaigns/templates')).templates.find((x) => x.fields.length >= 2)
    const fields = (marker) => Object.fromEntries(template.fields.map((f, i) => [f, i === template.fields.length - 1 ? marker : '您好 {{name|会员}}']))
    const survey = await api(server.base, owner, 'POST', '/api/admin/v1/surveys', {
      name: '到店体验调查',
      enabled: true,
      indicators: ['reputation', 'complaint'],
      ask_expectation: true,
      delay_hours: 0,
      min_days_between: 30,
      template_id: template.id,
      message: { fields: fields('survey') },
    })
    assert.match(survey.message.url, new RegExp(`/m/${server.merchant}/survey$`))
    await api(server.base, owner, 'POST', '/api/admin/v1/care-rules', {
      kind: 'survey_detractor',
      name: '差评回访',
      enabled: true,
      channel: 'template',
      template_id: template.id,
      message: { fields: fields('followup') },
    })
    const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { openid })
    memberId = f.member_id
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${memberId}`, { name: '韩梅梅' })
    await api(server.base, owner, 'POST', '/api/admin/v1/orders', { external_id: 'E2E-SV-1', member_id: memberId, amount_fen: 12800 })
  })

  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('sends the survey after the order, linking to the member centre', async () => {
    // The pass runs every 15 s; the engine sends within a second or so.
    assert.ok(await waitFor(async () => (await sentTo('survey')).length > 0, 60_000), 'no survey was sent')
    const sent = await sentTo('survey')
    assert.equal(sent.length, 1)
    assert.match(sent[0].url, new RegExp(`/m/${server.merchant}/survey$`))
  })

  it('lets the member answer from the member centre, once', async () => {
    const { page, problems, context } = await phone(browser, openid)
    await page.goto(`${server.base}/m/${server.merchant}/`)
    const invite = page.getByTestId('survey-pending')
    await invite.waitFor({ timeout: T })
    await memberA11y(page, 'member home with a survey')
    await shot(page, 'survey-01-member-home')
    await invite.click()

    await page.getByTestId('survey-form').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('survey-submit').isDisabled(), true, 'submit waits for every answer')
    await page.getByTestId('nps-3').click()
    await page.getByTestId('satisfaction-2').click()
    await page.getByTestId('expectation-4').click()
    await page.getByTestId('indicator-reputation-3').click()
    await page.getByTestId('indicator-complaint-2').click()
    await page.getByTestId('comment').locator('textarea').fill('等了四十分钟才上菜')
    await memberA11y(page, 'survey form')
    await shot(page, 'survey-02-form')
    await page.getByTestId('survey-submit').click()
    await page.getByTestId('survey-done').waitFor({ timeout: T })
    await memberA11y(page, 'survey answered')
    await shot(page, 'survey-03-thanks')

    // Nothing pending any more; the home page no longer invites.
    await page.goto(`${server.base}/m/${server.merchant}/survey`)
    await page.getByTestId('survey-none').waitFor({ timeout: T })
    await page.goto(`${server.base}/m/${server.merchant}/`)
    await page.getByTestId('balance').waitFor({ timeout: T })
    assert.equal(await page.getByTestId('survey-pending').count(), 0)
    assert.deepEqual(problems, [])
    await context.close()

    // The member attributes hold the answer: last NPS, a detractor's churn reason.
    const seg = await api(server.base, owner, 'POST', '/api/admin/v1/segments/preview', { rule: { field: 'last_nps', op: 'lte', value: 6 } })
    assert.equal(seg.count, 1)
  })

  it('refuses a second answer and out-of-range scores through the API', async () => {
    const { code } = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/oauth-code', { openid })
    const { state } = await api(server.base, null, 'GET', `/api/h5/v1/${server.merchant}/oauth-url?redirect_uri=${encodeURIComponent(`${server.base}/m/${server.merchant}/`)}`)
    const { token } = await api(server.base, null, 'POST', `/api/h5/v1/${server.merchant}/login`, { code, state })
    const results = await api(server.base, owner, 'GET', '/api/admin/v1/surveys/results')
    const inv = results.latest[0].invitation_id
    const path = `/api/member/v1/${server.merchant}/survey/${inv}/answer`
    const answer = { nps: 10, satisfaction: 5, expectation: 1, indicators: { reputation: 5, complaint: 5 } }
    await assert.rejects(api(server.base, token, 'POST', path, answer), /409 .*already been answered/)
    await assert.rejects(api(server.base, token, 'POST', path, { ...answer, nps: 11 }), /400 .*nps/)
  })

  it('shows the answer on the panel\'s results screen, the member linked', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '满意度调查' }).click()
    await page.getByTestId('survey-kpis').waitFor({ timeout: T })
    await page.getByTestId('survey-kpi-nps').getByText('-100.0').waitFor({ timeout: T })
    assert.match(await page.getByTestId('survey-kpi-satisfaction').innerText(), /2\.00/)
    assert.match(await page.getByTestId('survey-kpi-gap').innerText(), /-2\.00/)
    assert.match(await page.getByTestId('survey-kpi-rate').innerText(), /100/)
    await page.getByTestId('survey-trend').locator('canvas').waitFor({ timeout: T })
    const latest = page.getByTestId('survey-latest')
    await latest.getByText('等了四十分钟才上菜').waitFor({ timeout: T })
    await page.getByTestId('survey-list').getByText('到店体验调查').waitFor({ timeout: T })
    await panelA11y(page, 'survey results')
    await shot(page, 'survey-04-results')
    await latest.getByRole('link', { name: '韩梅梅' }).click()
    await page.waitForURL(new RegExp(`/admin/members/${memberId}$`), { timeout: T })
    assert.deepEqual(problems, [])
  })

  it('followed the detractor up exactly once', async () => {
    // The care scheduler runs every minute.
    const sent = await waitFor(async () => (await sentTo('followup')).length > 0, 90_000)
    assert.ok(sent, 'no follow-up was sent')
    await new Promise((r) => setTimeout(r, 3000))
    assert.equal((await sentTo('followup')).length, 1)
    assert.equal((await sentTo('survey')).length, 1)
  })
})
