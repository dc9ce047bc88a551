// The referral screen, against the real binary in sandbox mode with the
// WeChat simulator: a member invites another (their QR code's scene), the
// newcomer buys, and the merchant reads the figures and changes the
// rewards in the panel. Checked with axe and saved as a screenshot.
//   node --test e2e/referrals.test.mjs   (LOYALTY_BIN=path to skip go build)
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { api, apiLogin, checkA11y, launchBrowser, login, newPage, shot, startServer } from './harness.mjs'

const T = 20_000

describe('referrals', { concurrency: 1 }, () => {
  let server
  let browser
  let owner
  let referrer

  before(async () => {
    ;[server, browser] = await Promise.all([startServer(), launchBrowser()])
    owner = await apiLogin(server.base, server.username, server.password)
    await api(server.base, owner, 'PUT', '/api/admin/v1/referrals/settings', { referrer_points: 200, referee_points: 100 })
    // 李雷 follows, signs in to the member centre and takes his invitation.
    const f = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', {})
    referrer = f.member_id
    await api(server.base, owner, 'PATCH', `/api/admin/v1/members/${referrer}`, { name: '李雷' })
    const { code } = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/oauth-code', { openid: f.openid })
    const mid = (await api(server.base, owner, 'GET', '/api/admin/v1/me')).merchant_id
    // The sign-in the member centre starts: the service's state, then the code.
    const { state } = await api(server.base, null, 'GET', `/api/h5/v1/${mid}/oauth-url?redirect_uri=${encodeURIComponent(`${server.base}/m/${mid}/`)}`)
    const login = await api(server.base, null, 'POST', `/api/h5/v1/${mid}/login`, { code, state })
    const invite = await api(server.base, login.token, 'GET', `/api/member/v1/${mid}/invite`)
    // Three friends follow through his QR code; two of them buy.
    for (let i = 0; i < 3; i++) {
      const friend = await api(server.base, owner, 'POST', '/api/admin/v1/sandbox/follow', { scene: invite.qr.scene })
      if (i < 2) await api(server.base, owner, 'POST', '/api/admin/v1/orders', { external_id: `e2e-ref-${i}`, member_id: friend.member_id, amount_fen: 8800 })
    }
  })
  after(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('shows the figures and top referrers, and saves the rewards', async () => {
    const { page, problems } = await newPage(browser)
    await login(page, server.base, server.username, server.password)
    await page.getByTestId('kpis').waitFor({ timeout: T })
    await page.getByRole('menuitem', { name: '推荐有礼' }).click()
    await page.getByTestId('referral-kpis').waitFor({ timeout: T })
    await assert.doesNotReject(page.getByTestId('referral-kpi-signUps').getByText('3').waitFor({ timeout: T }))
    assert.match(await page.getByTestId('referral-kpi-conversions').innerText(), /2/)
    assert.match(await page.getByTestId('referral-kpi-cost').innerText(), /600/)
    const top = page.getByTestId('top-referrers')
    await top.getByText('李雷').waitFor({ timeout: T })
    const referrerPoints = page.locator('[data-testid="referrer-points"] input')
    assert.equal(await referrerPoints.inputValue(), '200')
    await checkA11y(page, 'referrals')
    await shot(page, 'referrals')

    await referrerPoints.fill('300')
    await page.getByTestId('referral-save').click()
    await page.getByText('推荐奖励已保存').waitFor({ timeout: T })
    const saved = await api(server.base, owner, 'GET', '/api/admin/v1/referrals/settings')
    assert.equal(saved.referrer_points, 300)
    assert.equal(saved.referee_points, 100)
    assert.deepEqual(problems, [])
  })
})
