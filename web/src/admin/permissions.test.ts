import { describe, expect, it } from 'vitest'
import { allows } from './permissions'
import { navItems } from './nav'

const viewer = ['members:read', 'channels:read', 'settings:read', 'points:read', 'campaigns:read'] as const

describe('allows', () => {
  it('checks one permission or any of several', () => {
    expect(allows([...viewer], 'members:read')).toBe(true)
    expect(allows([...viewer], 'points:write')).toBe(false)
    expect(allows([...viewer], ['orders:write', 'points:read'])).toBe(true)
    expect(allows([], undefined)).toBe(true)
  })
  it('shows a viewer only the areas it may read', () => {
    expect(navItems.filter((n) => allows([...viewer], n.need)).map((n) => n.route)).toEqual(['dashboard', 'members', 'orders', 'rewards', 'redemptions', 'channels', 'referrals', 'segments', 'campaigns', 'calendar', 'care', 'win-back', 'tag-rules', 'surveys', 'points-rules', 'tiers', 'settings'])
    expect(navItems.filter((n) => allows(['orders:write'], n.need)).map((n) => n.route)).toEqual(['orders'])
    expect(navItems.filter((n) => allows(['campaigns:read'], n.need)).map((n) => n.route)).toEqual(['segments', 'campaigns', 'calendar', 'care', 'win-back', 'surveys'])
  })
})
