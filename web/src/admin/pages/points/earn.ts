// What a sample order earns under the points rules, computed as the
// service does (points/rules.go OrderPoints): amount × points / per_fen ×
// tier% × birthday%, exact, rounded down once at the end; then the daily
// cap. The rules screen shows it so a merchant sees the effect of a change
// before saving it.

export interface EarnRules {
  earn: { points: number; per_fen: number }
  birthday_multiplier_pct: number
  daily_cap: number
  pending_days: number
}

export interface SampleOrder {
  amountFen: number
  tierPct: number // the member's tier multiplier (100 = none)
  birthday: boolean // ordered in the member's birthday month
  earnedToday?: number // points already earned from orders and check-ins today
}

export interface EarnExplanation {
  /** points before multipliers, as an exact decimal string (e.g. "128.5") */
  base: string
  tierPct: number
  birthdayPct: number
  /** points after multipliers, rounded down */
  computed: number
  /** points the daily cap removed */
  cappedBy: number
  points: number
  pendingDays: number
}

const MAX_POINTS = 1_000_000_000_000n

/** orderPoints: the service's OrderPoints, in BigInt so nothing overflows. */
export function orderPoints(r: EarnRules, amountFen: number, tierPct: number, birthdayPct: number): number {
  if (amountFen <= 0 || r.earn.points <= 0 || r.earn.per_fen <= 0) return 0
  const num = BigInt(Math.trunc(amountFen)) * BigInt(r.earn.points) * BigInt(tierPct) * BigInt(birthdayPct)
  const q = num / (BigInt(r.earn.per_fen) * 10000n)
  return Number(q > MAX_POINTS ? MAX_POINTS : q)
}

/** exact renders a/b as a decimal with up to two places (truncated). */
function exact(a: bigint, b: bigint): string {
  const hundredths = (a * 100n) / b
  const whole = hundredths / 100n
  const frac = hundredths % 100n
  if (frac === 0n) return whole.toString()
  return `${whole}.${frac.toString().padStart(2, '0').replace(/0$/, '')}`
}

export function explainEarn(r: EarnRules, o: SampleOrder): EarnExplanation {
  const birthdayPct = o.birthday ? r.birthday_multiplier_pct : 100
  const computed = orderPoints(r, o.amountFen, o.tierPct, birthdayPct)
  let points = computed
  if (r.daily_cap > 0) points = Math.max(0, Math.min(computed, r.daily_cap - (o.earnedToday ?? 0)))
  const base = r.earn.per_fen > 0 && o.amountFen > 0 ? exact(BigInt(Math.trunc(o.amountFen)) * BigInt(r.earn.points), BigInt(r.earn.per_fen)) : '0'
  return { base, tierPct: o.tierPct, birthdayPct, computed, cappedBy: computed - points, points, pendingDays: r.pending_days }
}
