// The browser scenarios' harness: the real binary on a fresh SQLite
// database in sandbox mode, Debian's Chromium driven by playwright-core,
// axe on every screen, a screenshot per scenario.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import assert from 'node:assert/strict'
import { chromium } from 'playwright-core'
import AxeBuilder from '@axe-core/playwright'

const here = dirname(fileURLToPath(import.meta.url))
export const repoRoot = join(here, '..', '..')
export const screenshots = join(here, 'screenshots')
mkdirSync(screenshots, { recursive: true })

/** The binary under test: LOYALTY_BIN, or built once from the repository. */
let built
export function binary() {
  if (process.env.LOYALTY_BIN) return process.env.LOYALTY_BIN
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), 'loyalty-e2e-bin-'))
    built = join(dir, 'loyalty')
    execFileSync('go', ['build', '-o', built, './cmd/loyalty'], { cwd: repoRoot, stdio: 'inherit' })
  }
  return built
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

/**
 * startServer runs the binary on a new data directory in sandbox mode and
 * resolves once it prints the demo owner's password. With seedMembers, the
 * merchant is filled by `demo seed` first (the service is started once to
 * create it, stopped, seeded, and started again). env adds to the
 * service's environment (LOYALTY_SEND_RATE...).
 */
export async function startServer({ seedMembers = 0, env: extra = {} } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'loyalty-e2e-data-'))
  const port = await freePort()
  const env = {
    ...process.env,
    LOYALTY_HTTP_ADDR: `127.0.0.1:${port}`,
    LOYALTY_DATA_DIR: dataDir,
    LOYALTY_SANDBOX: 'on',
    LOYALTY_LOG_LEVEL: 'warn',
    ...extra,
  }
  let server = await launch(env)
  if (seedMembers > 0) {
    await server.stop()
    execFileSync(binary(), ['demo', 'seed', '--merchant', String(server.merchant), '--members', String(seedMembers)], {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    server = await launch(env)
  }
  const base = `http://127.0.0.1:${port}`
  return {
    ...server,
    base,
    async stop() {
      await server.stop()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

function launch(env) {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary(), [], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let ready = false
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`the service did not start:\n${out}`))
    }, 60_000)
    // The sandbox banner (with the demo owner's password) goes to stderr.
    const onData = (b) => {
      out += b.toString()
      const m = /Demo merchant (\d+), owner "([^"]+)", password "([^"]+)"/.exec(out)
      if (!m || ready) return
      ready = true
      clearTimeout(timer)
      resolve({
        merchant: Number(m[1]),
        username: m[2],
        password: m[3],
        stop: () =>
          new Promise((done) => {
            if (proc.exitCode !== null) return done()
            proc.once('exit', () => done())
            proc.kill('SIGTERM')
          }),
      })
    }
    proc.stdout.on('data', onData)
    proc.stderr.on('data', onData)
    proc.on('exit', (code) => {
      clearTimeout(timer)
      if (!ready) reject(new Error(`the service exited (${code}):\n${out}`))
    })
  })
}

/** api calls the admin API as a script would (for setting up and checking what the API holds). */
export async function api(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  const data = text ? JSON.parse(text) : null
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return data
}

export async function apiLogin(base, username, password) {
  return (await api(base, null, 'POST', '/api/admin/v1/login', { username, password })).token
}

/** The Chromium flags the machines use (see docs: Debian's Chromium, no sandbox in CI). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  })
}

/** newPage opens a fresh context (its own storage) at a laptop's size, failing the test on page errors. */
export async function newPage(browser, { width = 1366, height = 900, locale = 'zh-CN' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, locale, timezoneId: 'Asia/Shanghai' })
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    // A refused request logs a console error too; those are asserted by the scenarios.
    if (m.type() === 'error' && !/status of (4\d\d)/.test(m.text())) problems.push(`console: ${m.text()}`)
  })
  return { context, page, problems }
}

/** login signs in through the login form. */
export async function login(page, base, username, password) {
  await page.goto(`${base}/admin/login`)
  await page.locator('input[name=username]').fill(username)
  await page.locator('input[name=password]').fill(password)
  await page.locator('button[type=submit]').click()
}

/** axe runs the accessibility checks; serious and critical violations fail the scenario. */
export async function checkA11y(page, screen) {
  // Toasts are transient and fade in and out (half-transparent text): let
  // them close first (Element Plus closes them after 3 s).
  await page.waitForFunction(() => !document.querySelector('.el-message'), null, { timeout: 15_000 })
  // A dialog fading in has half-transparent text: let transitions finish first.
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== 'running' || a.effect?.getTiming().iterations === Infinity), null, {
    timeout: 10_000,
  })
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze()
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  const text = bad
    .map((v) => `${v.impact} ${v.id}: ${v.help}\n${v.nodes.slice(0, 5).map((n) => `    ${n.target.join(' ')}  ${n.failureSummary?.split('\n')[1] ?? ''}`).join('\n')}`)
    .join('\n')
  assert.equal(bad.length, 0, `axe on ${screen}:\n${text}`)
}

export async function shot(page, name) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true })
}
