import { describe, expect, it } from 'vitest'
import zhCN from '@/locales/member/zh-CN.json'
import en from '@/locales/member/en.json'
import { flattenKeys } from '@/shared/i18n'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const zh = flattenKeys(zhCN)
const enKeys = flattenKeys(en)

describe('member centre locales', () => {
  it('have the same keys in Chinese and English', () => {
    expect(zh.filter((k) => !enKeys.includes(k))).toEqual([])
    expect(enKeys.filter((k) => !zh.includes(k))).toEqual([])
  })

  it('hold every key the pages use', () => {
    const dir = join(__dirname)
    const files = ['App.vue', ...readdirSync(join(dir, 'pages')).map((f) => `pages/${f}`), ...readdirSync(join(dir, 'components')).map((f) => `components/${f}`)]
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8')
      for (const m of src.matchAll(/\bt\('([a-zA-Z.]+)'/g)) expect(zh, `${f}: ${m[1]}`).toContain(m[1])
    }
  })

  it('name every ledger kind and coupon state', () => {
    for (const k of ['earn', 'redeem', 'expire', 'adjust', 'reverse', 'gift', 'release']) expect(zh).toContain(`points.kind.${k}`)
    for (const s of ['issued', 'used', 'expired', 'cancelled']) expect(zh).toContain(`coupons.status.${s}`)
    // The ledger's sources, read from the generated client (PointsEntry.ref_type).
    const schema = readFileSync(join(__dirname, '../api/schema.d.ts'), 'utf8')
    const m = /ref_type: (("[^"]*" \| )*"[^"]*");/.exec(schema)
    expect(m).not.toBeNull()
    for (const [, r] of m![1].matchAll(/"([^"]*)"/g)) if (r !== '' && r !== 'admin') expect(zh).toContain(`points.ref.${r}`)
  })
})
