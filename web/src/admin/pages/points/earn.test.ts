import { describe, expect, it } from 'vitest'
import { explainEarn, orderPoints, type EarnRules } from './earn'

const rules: EarnRules = { earn: { points: 1, per_fen: 100 }, birthday_multiplier_pct: 200, daily_cap: 0, pending_days: 7 }

describe('orderPoints', () => {
  it('rounds down once, after the multipliers', () => {
    // ¥128.50 at 1 per ¥1: 128.5 points; ×1.5 = 192.75 → 192; ×1.3 = 167.05 → 167
    expect(orderPoints(rules, 12850, 100, 100)).toBe(128)
    expect(orderPoints(rules, 12850, 150, 100)).toBe(192)
    expect(orderPoints(rules, 12850, 130, 100)).toBe(167) // 167.05, where rounding first would give 166
    expect(orderPoints(rules, 12850, 150, 200)).toBe(385)
  })
  it('earns nothing for nothing', () => {
    expect(orderPoints(rules, 0, 100, 100)).toBe(0)
    expect(orderPoints({ ...rules, earn: { points: 0, per_fen: 100 } }, 5000, 100, 100)).toBe(0)
  })
  it('does not overflow on huge amounts', () => {
    expect(orderPoints({ ...rules, earn: { points: 10000, per_fen: 1 } }, 9e15, 1000, 1000)).toBe(1_000_000_000_000)
  })
})

describe('explainEarn', () => {
  it('applies the birthday multiplier only in the birthday month, and the daily cap', () => {
    const e = explainEarn(rules, { amountFen: 12850, tierPct: 150, birthday: true })
    expect(e).toMatchObject({ base: '128.5', tierPct: 150, birthdayPct: 200, computed: 385, cappedBy: 0, points: 385, pendingDays: 7 })
    expect(explainEarn(rules, { amountFen: 12850, tierPct: 100, birthday: false }).birthdayPct).toBe(100)
    const capped = explainEarn({ ...rules, daily_cap: 300 }, { amountFen: 12850, tierPct: 150, birthday: true, earnedToday: 100 })
    expect(capped).toMatchObject({ computed: 385, points: 200, cappedBy: 185 })
  })
  it('shows the base points exactly', () => {
    expect(explainEarn({ ...rules, earn: { points: 3, per_fen: 200 } }, { amountFen: 999, tierPct: 100, birthday: false }).base).toBe('14.98')
    expect(explainEarn(rules, { amountFen: 10000, tierPct: 100, birthday: false }).base).toBe('100')
  })
})
