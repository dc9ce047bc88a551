// The JavaScript budget: for each route, the JS its first load needs (the
// entry, the shell and the page, with everything they import statically),
// gzipped. Reads the build's manifest; exits 1 over budget. The admin
// panel's login and dashboard: 350 KB; every page of the member centre
// (opened on a phone, often on a slow network): 150 KB.
//   node e2e/budget.mjs            report, check the budget
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dist = join(root, 'dist')
const manifest = JSON.parse(readFileSync(join(dist, '.vite/manifest.json'), 'utf8'))
const BUDGET_KB = 350
const MEMBER_BUDGET_KB = 150

const gz = new Map()
function gzipKB(file) {
  if (!gz.has(file)) gz.set(file, gzipSync(readFileSync(join(dist, file)), { level: 9 }).length / 1024)
  return gz.get(file)
}

// closure: the chunk's file and every chunk it imports statically.
function closure(key, out = new Set()) {
  const c = manifest[key]
  if (!c) throw new Error(`no chunk ${key} in the manifest`)
  if (out.has(c.file)) return out
  out.add(c.file)
  for (const i of c.imports ?? []) closure(i, out)
  return out
}

const entry = 'admin/index.html'
const routes = {
  login: [entry, 'admin/pages/login/LoginPage.vue'],
  dashboard: [entry, 'admin/layout/AppShell.vue', 'admin/pages/dashboard/DashboardPage.vue'],
  members: [entry, 'admin/layout/AppShell.vue', 'admin/pages/members/MembersPage.vue'],
  member: [entry, 'admin/layout/AppShell.vue', 'admin/pages/member/MemberPage.vue'],
}

console.log('Per chunk (JS, gzip -9):')
const chunks = Object.values(manifest).filter((c) => c.file.endsWith('.js'))
for (const c of chunks.sort((a, b) => gzipKB(b.file) - gzipKB(a.file))) {
  console.log(`  ${gzipKB(c.file).toFixed(1).padStart(7)} KB  ${c.file}`)
}
let over = false
console.log(`\nInitial JS per route (budget ${BUDGET_KB} KB for login and dashboard):`)
for (const [name, keys] of Object.entries(routes)) {
  const files = new Set()
  for (const k of keys) closure(k, files)
  const kb = [...files].filter((f) => f.endsWith('.js')).reduce((s, f) => s + gzipKB(f), 0)
  const checked = name === 'login' || name === 'dashboard'
  if (checked && kb > BUDGET_KB) over = true
  console.log(`  ${name.padEnd(10)} ${kb.toFixed(1).padStart(7)} KB  (${files.size} chunks)${checked ? (kb > BUDGET_KB ? '  OVER BUDGET' : '  ok') : ''}`)
}
const member = ['member/index.html']
const memberRoutes = {
  home: member,
  rewards: [...member, 'member/pages/RewardsPage.vue'],
  coupons: [...member, 'member/pages/CouponsPage.vue'],
  points: [...member, 'member/pages/PointsPage.vue'],
  checkin: [...member, 'member/pages/CheckinPage.vue'],
  profile: [...member, 'member/pages/ProfilePage.vue'],
  survey: [...member, 'member/pages/SurveyPage.vue'],
}
console.log(`\nMember centre, initial JS per page (budget ${MEMBER_BUDGET_KB} KB each):`)
for (const [name, keys] of Object.entries(memberRoutes)) {
  const files = new Set()
  for (const k of keys) closure(k, files)
  const kb = [...files].filter((f) => f.endsWith('.js')).reduce((s, f) => s + gzipKB(f), 0)
  if (kb > MEMBER_BUDGET_KB) over = true
  console.log(`  ${name.padEnd(10)} ${kb.toFixed(1).padStart(7)} KB  (${files.size} chunks)${kb > MEMBER_BUDGET_KB ? '  OVER BUDGET' : '  ok'}`)
}
process.exit(over ? 1 : 0)
