import { describe, expect, it } from 'vitest'
import { countConds, fromRule, newCond, newGroup, toRule, type FieldSpec } from './rule'

const stage: FieldSpec = { name: 'lifecycle_stage', type: 'enum', operators: ['eq', 'ne', 'in', 'not_in'], values: ['new', 'loyal'] }
const spend: FieldSpec = { name: 'total_spend_fen', type: 'integer', operators: ['gte', 'between'], min: 0, max: 1e15 }

describe('segment rule model', () => {
  it('writes nothing for an empty builder and a single condition bare', () => {
    const g = newGroup()
    expect(toRule(g)).toBeNull()
    g.items.push(newCond(stage))
    expect(toRule(g)).toEqual({ field: 'lifecycle_stage', op: 'eq', value: 'new' })
  })

  it('writes groups, NOT and money in fen, and reads them back', () => {
    const spent = newCond(spend)
    spent.value = 128.5
    const notNew = newCond(stage)
    notNew.not = true
    const any = newGroup('any', [spent, notNew])
    const root = newGroup('all', [newCond(stage), any])
    const rule = toRule(root)
    expect(rule).toEqual({
      all: [
        { field: 'lifecycle_stage', op: 'eq', value: 'new' },
        { any: [{ field: 'total_spend_fen', op: 'gte', value: 12850 }, { not: { field: 'lifecycle_stage', op: 'eq', value: 'new' } }] },
      ],
    })
    const back = fromRule(rule)
    expect(countConds(back)).toBe(3)
    expect(toRule(back)).toEqual(rule)
  })

  it('reads a negated group', () => {
    const rule = { not: { any: [{ field: 'rfm_r', op: 'eq', value: 5 }, { field: 'rfm_f', op: 'eq', value: 5 }] } }
    const g = fromRule(rule)
    expect(g.not).toBe(true)
    expect(g.op).toBe('any')
    expect(toRule(g)).toEqual(rule)
  })
})
