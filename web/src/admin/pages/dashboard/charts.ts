// The ECharts modules the dashboard uses, registered once: only these are
// bundled (and only into the dashboard's lazy chunk). Option builders are
// pure functions of the API's figures, so they are unit-tested.
import { use } from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'
import { BarChart, FunnelChart, HeatmapChart } from 'echarts/charts'
import { GridSimpleComponent, LegendPlainComponent, TooltipComponent, VisualMapContinuousComponent } from 'echarts/components'
import type { components } from '@/api/schema'

use([CanvasRenderer, BarChart, FunnelChart, HeatmapChart, GridSimpleComponent, LegendPlainComponent, TooltipComponent, VisualMapContinuousComponent])

export type Dashboard = components['schemas']['Dashboard']
type Translate = (key: string, named?: Record<string, unknown>) => string
type EChartsOption = Record<string, unknown>

import { PYRAMID, STAGES } from '@/shared/enums'

export { PYRAMID, STAGES }

const palette = ['#1d6fdc', '#36a3a0', '#e6a23c', '#8e6ad8', '#d9534f', '#5b8c00', '#c45ab3', '#6b7785']

/** acquisitionOption: new followers and new members per channel (the 10 largest, then the rest). */
export function acquisitionOption(d: Dashboard, t: Translate): EChartsOption | null {
  const f = d.period.new_followers
  const m = d.period.new_members
  const names = new Map<string, { followers: number; members: number }>()
  for (const c of f.channels) names.set(c.channel, { followers: c.count, members: 0 })
  for (const c of m.channels) {
    const e = names.get(c.channel) ?? { followers: 0, members: 0 }
    e.members = c.count
    names.set(c.channel, e)
  }
  const rows = [...names.entries()].sort((a, b) => b[1].members + b[1].followers - (a[1].members + a[1].followers))
  const top = rows.slice(0, 10)
  const rest = rows.slice(10).reduce((s, [, v]) => ({ followers: s.followers + v.followers, members: s.members + v.members }), {
    followers: f.other_channels,
    members: m.other_channels,
  })
  if (rest.followers || rest.members) top.push([t('dashboard.charts.otherChannels'), rest])
  if (!top.length) return null
  const label = (c: string) => (c === '' ? t('dashboard.charts.noChannel') : c)
  const cats = top.map(([c]) => label(c)).reverse()
  return {
    color: palette,
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    grid: { left: 8, right: 24, top: 32, bottom: 8, containLabel: true },
    xAxis: { type: 'value', minInterval: 1 },
    yAxis: { type: 'category', data: cats },
    series: [
      { name: t('dashboard.charts.acquisitionFollowers'), type: 'bar', data: top.map(([, v]) => v.followers).reverse() },
      { name: t('dashboard.charts.acquisitionMembers'), type: 'bar', data: top.map(([, v]) => v.members).reverse() },
    ],
  }
}

/** lifecycleOption: members per stage, in the lifecycle's order. */
export function lifecycleOption(d: Dashboard, t: Translate): EChartsOption | null {
  const lc = d.current.lifecycle as Record<string, number | undefined>
  const values = STAGES.map((s) => lc[s] ?? 0)
  if (values.every((v) => v === 0)) return null
  const colors: Record<string, string> = {
    potential: '#8c98a8', new: '#1d6fdc', repeat: '#36a3a0', loyal: '#18794e',
    at_risk: '#e6a23c', churned: '#d9534f', won_back: '#8e6ad8', lost: '#6b7785',
  }
  return {
    tooltip: { trigger: 'axis' },
    grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
    xAxis: { type: 'category', data: STAGES.map((s) => t(`enums.stage.${s}`)) },
    yAxis: { type: 'value', minInterval: 1 },
    series: [
      {
        name: t('dashboard.kpi.members'),
        type: 'bar',
        barMaxWidth: 36,
        data: STAGES.map((s, i) => ({ value: values[i], itemStyle: { color: colors[s] } })),
        label: { show: true, position: 'top' },
      },
    ],
  }
}

/** pyramidOption: the value pyramid, platinum at the top. */
export function pyramidOption(d: Dashboard, t: Translate): EChartsOption | null {
  const p = d.current.pyramid as Record<string, number | undefined>
  const values = PYRAMID.map((k) => p[k] ?? 0)
  if (values.every((v) => v === 0)) return null
  const colors = ['#7b8aa0', '#d4a017', '#8c8c8c', '#4a4a4a']
  return {
    tooltip: { trigger: 'item', formatter: '{b}: {c}' },
    series: [
      {
        type: 'funnel',
        sort: 'none',
        // The shape is fixed (a pyramid); the label says how many.
        data: PYRAMID.map((k, i) => ({
          name: t(`enums.pyramid.${k}`),
          value: i + 1,
          count: values[i],
          itemStyle: { color: colors[i] },
        })),
        label: { show: true, position: 'inside', formatter: (x: { name: string; data: { count: number } }) => `${x.name} ${x.data.count}` },
        tooltip: { formatter: (x: { name: string; data: { count: number } }) => `${x.name}: ${x.data.count}` },
        minSize: '10%',
        maxSize: '100%',
        gap: 2,
        left: '10%',
        width: '80%',
      },
    ],
  }
}

/** rfmOption: the R×F grid as a heat map of members. */
export function rfmOption(d: Dashboard, t: Translate): EChartsOption | null {
  const cells = d.current.rfm
  if (!cells.length) return null
  const max = Math.max(...cells.map((c) => c.members))
  const axis = ['1', '2', '3', '4', '5']
  return {
    tooltip: {
      formatter: (x: { data: [number, number, number, number] }) =>
        t('dashboard.charts.rfmTooltip', { r: x.data[0] + 1, f: x.data[1] + 1, members: x.data[2], m: x.data[3].toFixed(1) }),
    },
    // The colour scale stands at the right, clear of the axis names.
    grid: { left: 28, right: 64, top: 16, bottom: 30, containLabel: true },
    xAxis: { type: 'category', data: axis, name: t('dashboard.charts.rfmR'), nameLocation: 'middle', nameGap: 26 },
    yAxis: { type: 'category', data: axis, name: t('dashboard.charts.rfmF'), nameLocation: 'middle', nameGap: 26 },
    visualMap: { min: 0, max, calculable: false, orient: 'vertical', right: 0, top: 'middle', itemHeight: 120, inRange: { color: ['#e8f1fd', '#1d6fdc'] } },
    series: [
      {
        type: 'heatmap',
        data: cells.map((c) => [c.r - 1, c.f - 1, c.members, c.avg_m]),
        label: { show: true, formatter: (x: { data: number[] }) => String(x.data[2]) },
        encode: { x: 0, y: 1, value: 2 },
      },
    ],
  }
}

/** cohortOption: retention by first-order month (rows) and months after (columns). */
export function cohortOption(d: Dashboard, t: Translate, pct: (r: number) => string): EChartsOption | null {
  const cohorts = d.period.retention
  if (!cohorts.length || cohorts.every((c) => c.size === 0)) return null
  const offsets = Array.from({ length: 12 }, (_, i) => t('dashboard.charts.cohortOffset', { n: i + 1 }))
  const data: [number, number, number, number, string, number][] = []
  cohorts.forEach((c, row) => {
    for (const m of c.months) data.push([m.offset - 1, row, Math.round(m.rate * 1000) / 10, m.members, c.month, c.size])
  })
  return {
    tooltip: {
      formatter: (x: { data: (typeof data)[number] }) =>
        t('dashboard.charts.cohortTooltip', { cohort: x.data[4], size: x.data[5], n: x.data[0] + 1, members: x.data[3], rate: pct(x.data[2] / 100) }),
    },
    grid: { left: 8, right: 16, top: 8, bottom: 48, containLabel: true },
    xAxis: { type: 'category', data: offsets, axisLabel: { interval: 0, rotate: 30 } },
    yAxis: { type: 'category', data: cohorts.map((c) => `${c.month} (${c.size})`), inverse: true },
    visualMap: { min: 0, max: 100, orient: 'horizontal', left: 'center', bottom: 0, itemHeight: 120, text: ['100%', '0%'], inRange: { color: ['#f0f5ff', '#18794e'] } },
    series: [
      {
        type: 'heatmap',
        data,
        encode: { x: 0, y: 1, value: 2 },
        label: { show: true, fontSize: 10, formatter: (x: { data: number[] }) => (x.data[3] ? `${x.data[2]}%` : '') },
      },
    ],
  }
}

/** liabilityOption: outstanding points by the month they expire. */
export function liabilityOption(d: Dashboard, t: Translate): EChartsOption | null {
  const rows = d.current.points_liability.expiring_by_month ?? []
  if (!rows.length) return null
  return {
    color: ['#e6a23c'],
    tooltip: { trigger: 'axis' },
    grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
    xAxis: { type: 'category', data: rows.map((r) => r.month ?? '') },
    yAxis: { type: 'value' },
    series: [{ name: t('dashboard.charts.liabilityPoints'), type: 'bar', barMaxWidth: 32, data: rows.map((r) => r.points ?? 0) }],
  }
}

/** delta compares a period's figure with the comparison period's: +12.5%, or null without a base. */
export function delta(now: number | null | undefined, before: number | null | undefined): number | null {
  if (now === null || now === undefined || before === null || before === undefined || before === 0) return null
  return (now - before) / before
}
