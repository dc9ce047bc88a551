import { describe, expect, it } from 'vitest'
import { createPanelI18n } from '@/shared/i18n'
import { formatPercent } from '@/shared/format'
import { acquisitionOption, cohortOption, delta, lifecycleOption, pyramidOption, rfmOption, type Dashboard } from './charts'

const t = createPanelI18n('zh-CN').global.t as (k: string, n?: Record<string, unknown>) => string

const period = (over: Partial<Dashboard['period']> = {}): Dashboard['period'] => ({
  from: '2026-03-01',
  to: '2026-03-31',
  new_followers: { total: 0, channels: [], other_channels: 0 },
  new_members: { total: 0, channels: [], other_channels: 0 },
  unfollows: 0,
  active_members: 0,
  repeat_purchase: { buyers: 0, repeat_buyers: 0, rate: null },
  retention: [],
  churn: { entries: 0, base: 0, rate: null },
  win_back: { entries: 0, base: 0, rate: null },
  ...over,
})

const dashboard = (p: Partial<Dashboard['period']> = {}, current: Partial<Dashboard['current']> = {}): Dashboard => ({
  time_zone: 'Asia/Shanghai',
  period: period(p),
  compare: period(),
  computed_at: '2026-03-31T00:00:00Z',
  cached: false,
  expires_at: '2026-03-31T00:05:00Z',
  current: {
    members: 0,
    lifecycle: { potential: 0, new: 0, repeat: 0, loyal: 0, at_risk: 0, churned: 0, won_back: 0, lost: 0 },
    pyramid: { platinum: 0, gold: 0, iron: 0, lead: 0, none: 0 },
    rfm: [],
    rfm_unscored: 0,
    clv: { members: 0, average_fen: 0, equity_fen: 0 },
    share_top20: null,
    points_liability: { as_of: '', accounts: 0, outstanding: 0, pending: 0, debt: 0, value_fen: 0, expiring_by_month: [], never_expiring: 0 },
    ...current,
  },
})

describe('dashboard charts', () => {
  it('have nothing to draw on an empty merchant', () => {
    const d = dashboard()
    expect(acquisitionOption(d, t)).toBeNull()
    expect(lifecycleOption(d, t)).toBeNull()
    expect(pyramidOption(d, t)).toBeNull()
    expect(rfmOption(d, t)).toBeNull()
    expect(cohortOption(d, t, formatPercent)).toBeNull()
  })

  it('join followers and members by channel, name the empty channel and add the rest', () => {
    const d = dashboard({
      new_followers: { total: 9, channels: [{ channel: 'poster', count: 5 }, { channel: '', count: 2 }], other_channels: 2 },
      new_members: { total: 7, channels: [{ channel: 'poster', count: 4 }, { channel: 'store', count: 3 }], other_channels: 0 },
    })
    const o = acquisitionOption(d, t) as { yAxis: { data: string[] }; series: { data: number[] }[] }
    // Largest at the top of a horizontal bar chart: the category axis runs bottom-up.
    expect(o.yAxis.data).toEqual(['其他渠道', '无渠道（直接关注）', 'store', 'poster'])
    expect(o.series[0].data).toEqual([2, 2, 0, 5])
    expect(o.series[1].data).toEqual([0, 0, 3, 4])
  })

  it('show the lifecycle in its order with Chinese names', () => {
    const d = dashboard({}, { lifecycle: { potential: 5, new: 4, repeat: 3, loyal: 2, at_risk: 1, churned: 1, won_back: 0, lost: 0 } })
    const o = lifecycleOption(d, t) as { xAxis: { data: string[] }; series: { data: { value: number }[] }[] }
    expect(o.xAxis.data).toEqual(['潜在', '新客', '复购', '忠诚', '风险', '流失', '挽回', '已流失'])
    expect(o.series[0].data.map((x) => x.value)).toEqual([5, 4, 3, 2, 1, 1, 0, 0])
  })

  it('put RFM cells at their scores', () => {
    const d = dashboard({}, { rfm: [{ r: 1, f: 1, members: 3, avg_m: 1.5 }, { r: 5, f: 4, members: 9, avg_m: 4.2 }] })
    const o = rfmOption(d, t) as { series: { data: number[][] }[]; visualMap: { max: number } }
    expect(o.series[0].data).toEqual([[0, 0, 3, 1.5], [4, 3, 9, 4.2]])
    expect(o.visualMap.max).toBe(9)
  })

  it('give each cohort month its retention in percent', () => {
    const d = dashboard({
      retention: [{ month: '2026-01', size: 10, months: [{ offset: 1, month: '2026-02', members: 3, rate: 0.3 }, { offset: 2, month: '2026-03', members: 1, rate: 0.1 }] }],
    })
    const o = cohortOption(d, t, formatPercent) as { series: { data: unknown[][] }[]; yAxis: { data: string[] } }
    expect(o.yAxis.data).toEqual(['2026-01 (10)'])
    expect(o.series[0].data).toEqual([[0, 0, 30, 3, '2026-01', 10], [1, 0, 10, 1, '2026-01', 10]])
  })

  it('compare with the previous period only when it has a base', () => {
    expect(delta(12, 10)).toBeCloseTo(0.2)
    expect(delta(5, 0)).toBeNull()
    expect(delta(null, 3)).toBeNull()
  })
})
