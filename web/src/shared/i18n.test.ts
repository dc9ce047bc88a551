import { describe, expect, it } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import zhCN from '@/locales/zh-CN.json'
import enMessages from '@/locales/en.json'
import zhScreens from '@/locales/screens/zh-CN.json'
import enScreens from '@/locales/screens/en.json'
import { flattenKeys, initialLocale } from './i18n'

// The lazily loaded screens' messages are part of the one key set, merged
// deeply as vue-i18n's mergeLocaleMessage does.
function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k]
    out[k] = cur && typeof cur === 'object' && v && typeof v === 'object' ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v
  }
  return out
}
const messages = { 'zh-CN': deepMerge(zhCN, zhScreens), en: deepMerge(enMessages, enScreens) }
import { STAGES, PYRAMID } from './enums'

const zh = flattenKeys(messages['zh-CN'])
const en = flattenKeys(messages.en)

describe('locales', () => {
  it('have the same keys in Chinese and English', () => {
    expect(zh.filter((k) => !en.includes(k))).toEqual([])
    expect(en.filter((k) => !zh.includes(k))).toEqual([])
  })

  it('have no empty message', () => {
    for (const [name, m] of Object.entries(messages)) {
      for (const key of flattenKeys(m)) {
        const v = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], m)
        expect(typeof v === 'string' && v.trim().length > 0, `${name} ${key}`).toBe(true)
      }
    }
  })

  it('name every value of the API closed sets the panel shows', () => {
    for (const s of STAGES) expect(zh).toContain(`enums.stage.${s}`)
    for (const p of PYRAMID) expect(zh).toContain(`enums.pyramid.${p}`)
    // The spec's enums, read from the generated client: a new code, permission
    // or ledger kind added to the API fails here until it is translated.
    const schema = readFileSync(join(__dirname, '../api/schema.d.ts'), 'utf8')
    const union = (name: string) => {
      const m = new RegExp(`${name}: (("[^"]+" \\| )*"[^"]+");`).exec(schema)
      expect(m, name).not.toBeNull()
      return [...m![1].matchAll(/"([^"]+)"/g)].map((x) => x[1])
    }
    for (const p of union('Permission')) expect(zh).toContain(`enums.permission.${p}`)
    for (const r of union('Role')) expect(zh).toContain(`enums.role.${r}`)
    for (const s of union('LifecycleStage')) expect(zh).toContain(`enums.stage.${s}`)
  })

  it('map every API error code', () => {
    const schema = readFileSync(join(__dirname, '../api/schema.d.ts'), 'utf8')
    const codes = /code: (("[^"]+" \| )*"[^"]+");/.exec(schema)
    expect(codes).not.toBeNull()
    for (const [, c] of codes![1].matchAll(/"([^"]+)"/g)) expect(zh).toContain(`errors.codes.${c}`)
    expect(zh).toContain('errors.codes.network')
  })

  it('cover every key the sources use', () => {
    // t('a.b.c') with a literal key, in every .ts and .vue file of the panel.
    const used = new Set<string>()
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name)
        // The member centre has its own words (src/locales/member) and test.
        if (e.isDirectory() && p === join(__dirname, '..', 'member')) continue
        if (e.isDirectory()) walk(p)
        else if (/\.(ts|vue)$/.test(e.name) && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
          for (const m of readFileSync(p, 'utf8').matchAll(/\bt\(\s*'([a-zA-Z0-9_.]+)'/g)) used.add(m[1])
          for (const m of readFileSync(p, 'utf8').matchAll(/label: '([a-z]+\.[a-zA-Z0-9_.]+)'/g)) used.add(m[1])
        }
      }
    }
    walk(join(__dirname, '..'))
    expect(used.size).toBeGreaterThan(100)
    expect([...used].filter((k) => !zh.includes(k))).toEqual([])
    expect([...used].filter((k) => !en.includes(k))).toEqual([])
  })

  it('start in Chinese unless English was chosen', () => {
    expect(initialLocale(null)).toBe('zh-CN')
    expect(initialLocale('fr')).toBe('zh-CN')
    expect(initialLocale('en')).toBe('en')
  })
})
