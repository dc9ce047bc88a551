// The segment builder's model: groups (all / any, optionally negated) of
// conditions (field, operator, value) <-> the API's rule JSON. Pure, so
// the mapping is unit-tested.

export interface FieldSpec {
  name: string
  type: string // enum, integer, text, boolean, id_set, days_since, upcoming_date
  operators: string[]
  values?: string[]
  min?: number
  max?: number
}

export interface Cond {
  kind: 'cond'
  id: number
  not: boolean
  field: string
  op: string
  value: unknown
}

export interface Group {
  kind: 'group'
  id: number
  not: boolean
  op: 'all' | 'any'
  items: Node[]
}

export type Node = Cond | Group

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Rule = Record<string, any>

let seq = 0
const nextId = () => ++seq

export const newGroup = (op: 'all' | 'any' = 'all', items: Node[] = []): Group => ({ kind: 'group', id: nextId(), not: false, op, items })

/** Money fields are edited in yuan and stored in fen. */
export const isMoney = (field: string) => field.endsWith('_fen')

/** A list value (in, has_any...), a pair (between), a boolean (is_set, boolean eq) or one value. */
export function valueShape(spec: FieldSpec | undefined, op: string): 'list' | 'pair' | 'bool' | 'one' {
  if (['in', 'not_in', 'has_any', 'has_all', 'has_none'].includes(op)) return 'list'
  if (op === 'between') return 'pair'
  if (op === 'is_set' || spec?.type === 'boolean') return 'bool'
  return 'one'
}

/** defaultValue is what a fresh condition on the field holds. */
export function defaultValue(spec: FieldSpec | undefined, op: string): unknown {
  switch (valueShape(spec, op)) {
    case 'list':
      return []
    case 'pair':
      return [spec?.min ?? 0, spec?.max !== undefined && spec.max < 1000 ? spec.max : 30]
    case 'bool':
      return true
  }
  if (spec?.type === 'enum') return spec.values?.[0] ?? ''
  if (spec?.type === 'text') return ''
  if (spec?.type === 'upcoming_date') return 7
  if (spec?.type === 'days_since') return 30
  return spec?.min !== undefined && spec.min > 0 ? spec.min : 0
}

export function newCond(spec: FieldSpec): Cond {
  const op = spec.operators[0] ?? 'eq'
  return { kind: 'cond', id: nextId(), not: false, field: spec.name, op, value: defaultValue(spec, op) }
}

const wrap = (not: boolean, r: Rule): Rule => (not ? { not: r } : r)

/** toRule turns the tree into the API's rule; null when nothing is set yet. */
export function toRule(n: Node): Rule | null {
  if (n.kind === 'cond') {
    const v = isMoney(n.field) ? scaleMoney(n.value, 100) : n.value
    return wrap(n.not, { field: n.field, op: n.op, value: v })
  }
  const parts = n.items.map(toRule).filter((r): r is Rule => r !== null)
  if (parts.length === 0) return null
  if (parts.length === 1) return wrap(n.not, parts[0]!)
  return wrap(n.not, { [n.op]: parts })
}

function scaleMoney(v: unknown, k: number): unknown {
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'number' ? Math.round(x * k * 100) / 100 : x))
  return typeof v === 'number' ? Math.round(v * k * 100) / 100 : v
}

/** fromRule reads a saved rule into a tree whose root is a group. */
export function fromRule(r: Rule | null | undefined): Group {
  const n = read(r ?? {}, false)
  if (n.kind === 'group') return n
  return newGroup('all', [n])
}

function read(r: Rule, not: boolean): Node {
  if (r.not) return read(r.not as Rule, !not)
  if (Array.isArray(r.all) || Array.isArray(r.any)) {
    const op = Array.isArray(r.all) ? 'all' : 'any'
    const g = newGroup(op, (r[op] as Rule[]).map((x) => read(x, false)))
    g.not = not
    return g
  }
  if (typeof r.field !== 'string') return newGroup()
  const value = isMoney(r.field) ? scaleMoney(r.value, 0.01) : r.value
  return { kind: 'cond', id: nextId(), not, field: r.field, op: String(r.op), value }
}

/** countConds counts the conditions of a tree. */
export function countConds(n: Node): number {
  return n.kind === 'cond' ? 1 : n.items.reduce((s, x) => s + countConds(x), 0)
}
