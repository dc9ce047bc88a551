// The navigation: one entry per area, shown only to those allowed in.
// A new area adds its route in router.ts and one line here.
import type { Component } from 'vue'
import { Avatar, Calendar, ChatLineSquare, CircleCheck, Coin, Connection, DataAnalysis, Document, Filter, Key, Medal, Present, PriceTag, Promotion, RefreshLeft, Setting, Share, ShoppingCart, Sunny, User } from '@element-plus/icons-vue'
import type { Requirement } from '@/admin/permissions'

export interface NavItem {
  /** The route's name. */
  route: string
  /** The i18n key of its label. */
  label: string
  icon: Component
  need: Requirement
}

export const navItems: NavItem[] = [
  { route: 'dashboard', label: 'nav.dashboard', icon: DataAnalysis, need: 'members:read' },
  { route: 'members', label: 'nav.members', icon: User, need: 'members:read' },
  { route: 'orders', label: 'nav.orders', icon: ShoppingCart, need: ['points:read', 'orders:write'] },
  { route: 'rewards', label: 'nav.rewards', icon: Present, need: 'points:read' },
  { route: 'redemptions', label: 'nav.redemptions', icon: CircleCheck, need: 'points:read' },
  { route: 'channels', label: 'nav.channels', icon: Share, need: 'channels:read' },
  { route: 'referrals', label: 'nav.referrals', icon: Connection, need: 'points:read' },
  // Marketing.
  { route: 'segments', label: 'nav.segments', icon: Filter, need: 'campaigns:read' },
  { route: 'campaigns', label: 'nav.campaigns', icon: Promotion, need: 'campaigns:read' },
  { route: 'calendar', label: 'nav.calendar', icon: Calendar, need: 'campaigns:read' },
  { route: 'care', label: 'nav.care', icon: Sunny, need: 'campaigns:read' },
  { route: 'win-back', label: 'nav.winBack', icon: RefreshLeft, need: 'campaigns:read' },
  { route: 'tag-rules', label: 'nav.tagRules', icon: PriceTag, need: 'members:read' },
  { route: 'surveys', label: 'nav.surveys', icon: ChatLineSquare, need: 'campaigns:read' },
  // The merchant's setup screens.
  { route: 'points-rules', label: 'nav.pointsRules', icon: Coin, need: 'points:read' },
  { route: 'tiers', label: 'nav.tiers', icon: Medal, need: 'points:read' },
  { route: 'staff', label: 'nav.staff', icon: Avatar, need: 'staff:manage' },
  { route: 'api-keys', label: 'nav.apiKeys', icon: Key, need: 'apikeys:manage' },
  { route: 'audit', label: 'nav.audit', icon: Document, need: 'audit:read' },
  { route: 'settings', label: 'nav.settings', icon: Setting, need: 'settings:read' },
]
