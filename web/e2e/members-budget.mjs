// The members screen's budget on a large merchant, measured in the browser:
// the first page of members rendered within 500 ms of navigation and the
// next page within 300 ms (issue: admin panel, part 1). Run it against a
// service whose merchant holds the members (see docs/benchmarks.md, "Admin
// panel: the members screen on 1,000,000 members"):
//
//   LOYALTY_BASE=http://127.0.0.1:8080 LOYALTY_USER=owner LOYALTY_PASSWORD=... \
//     node e2e/members-budget.mjs [--loads 10]
//
// Each load is timed by the page itself (the Performance API): from the
// navigation's start (a full page load: performance.timeOrigin; an in-app
// navigation: the click) to the frame in which the table shows its first
// row; the next page from the click on "load more" to the frame in which
// the table holds more rows. It prints each load and the medians.
import { launchBrowser, newPage, login } from './harness.mjs'

const base = process.env.LOYALTY_BASE
const user = process.env.LOYALTY_USER
const password = process.env.LOYALTY_PASSWORD
if (!base || !user || !password) {
  console.error('set LOYALTY_BASE, LOYALTY_USER and LOYALTY_PASSWORD')
  process.exit(2)
}
const loadsArg = process.argv.indexOf('--loads')
const loads = loadsArg > 0 ? Number(process.argv[loadsArg + 1]) : 10

const rows = '[data-testid=members-table] .el-table__body tbody tr'

// rowsAfter resolves, in the page, with performance.now() at the first frame
// in which the table holds more than n rows.
function rowsAfter(n) {
  return (args) =>
    new Promise((resolve) => {
      const tick = () => {
        if (document.querySelectorAll(args.rows).length > args.n) resolve(performance.now())
        else requestAnimationFrame(tick)
      }
      tick()
    })
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const browser = await launchBrowser()
const { page } = await newPage(browser)
await login(page, base, user, password)
await page.waitForURL(/\/admin\/(?!login)/, { timeout: 30_000 })

const full = []
const inApp = []
const next = []
for (let i = 0; i < loads; i++) {
  // A full load of the members screen (the app's JavaScript from the cache).
  await page.goto(`${base}/admin/members`, { waitUntil: 'commit' })
  full.push(await page.evaluate(rowsAfter(0), { rows, n: 0 }))

  // The next page.
  const before = await page.locator(rows).count()
  const clicked = await page.evaluate(() => performance.now())
  await page.locator('.more-pager button').click()
  next.push((await page.evaluate(rowsAfter(before), { rows, n: before })) - clicked)

  // An in-app navigation: away to the dashboard, then back by the menu.
  await page.goto(`${base}/admin/`, { waitUntil: 'load' })
  await page.locator('.el-menu-item:has-text("会员")').first().waitFor()
  const t0 = await page.evaluate(() => performance.now())
  await page.locator('.el-menu-item:has-text("会员")').first().click()
  inApp.push((await page.evaluate(rowsAfter(0), { rows, n: 0 })) - t0)
  console.log(
    `load ${i + 1}: full page ${full[i].toFixed(0)} ms, in-app ${inApp[i].toFixed(0)} ms, next page ${next[i].toFixed(0)} ms`,
  )
}
console.log(
  `median of ${loads}: first page ${median(full).toFixed(0)} ms (full load), ${median(inApp).toFixed(0)} ms (in-app); ` +
    `next page ${median(next).toFixed(0)} ms; worst: ${Math.max(...full).toFixed(0)} / ${Math.max(...inApp).toFixed(0)} / ${Math.max(...next).toFixed(0)} ms`,
)
await browser.close()
