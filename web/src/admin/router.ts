// Routes: one lazy page per route, so the first screen loads only what it
// shows. meta.need is the permission a page needs (the menu and the guard
// both read it); meta.title is the i18n key of its title.
import { createRouter, createWebHistory, type RouteLocationNormalized, type Router } from 'vue-router'
import type { Pinia } from 'pinia'
import { setUnauthorizedHandler } from '@/api/client'
import { useSession } from '@/admin/stores/session'
import type { Requirement } from '@/admin/permissions'
import { navItems } from '@/admin/nav'
import { withScreenMessages } from '@/shared/i18n'
import type { Composer } from 'vue-i18n'

declare module 'vue-router' {
  interface RouteMeta {
    public?: boolean
    need?: Requirement
    title?: string
  }
}

export function createPanelRouter(pinia: Pinia, i18n: () => Composer): Router {
  const screen = <T>(load: () => Promise<T>) => withScreenMessages(i18n, load)
  const router = createRouter({
    history: createWebHistory('/admin/'),
    routes: [
      { path: '/login', name: 'login', component: () => import('./pages/login/LoginPage.vue'), meta: { public: true, title: 'login.title' } },
      {
        path: '/',
        component: () => import('./layout/AppShell.vue'),
        children: [
          { path: '', name: 'dashboard', component: () => import('./pages/dashboard/DashboardPage.vue'), meta: { need: 'members:read', title: 'nav.dashboard' } },
          { path: 'members', name: 'members', component: () => import('./pages/members/MembersPage.vue'), meta: { need: 'members:read', title: 'nav.members' } },
          { path: 'members/:id(\\d+)', name: 'member', component: screen(() => import('./pages/member/MemberPage.vue')), meta: { need: 'members:read', title: 'member.title' } },
          { path: 'orders/:externalId?', name: 'orders', component: () => import('./pages/orders/OrdersPage.vue'), meta: { need: ['points:read', 'orders:write'], title: 'nav.orders' } },
          { path: 'redemptions', name: 'redemptions', component: screen(() => import('./pages/redemptions/RedemptionsPage.vue')), meta: { need: 'points:read', title: 'nav.redemptions' } },
          { path: 'channels', name: 'channels', component: screen(() => import('./pages/channels/ChannelsPage.vue')), meta: { need: 'channels:read', title: 'nav.channels' } },
          { path: 'rewards', name: 'rewards', component: () => import('./pages/rewards/RewardsPage.vue'), meta: { need: 'points:read', title: 'nav.rewards' } },
          { path: 'referrals', name: 'referrals', component: screen(() => import('./pages/referrals/ReferralsPage.vue')), meta: { need: 'points:read', title: 'nav.referrals' } },
          // Marketing: segments, campaigns, the calendar and care rules.
          { path: 'segments', name: 'segments', component: () => import('./pages/segments/SegmentsPage.vue'), meta: { need: 'campaigns:read', title: 'nav.segments' } },
          { path: 'segments/new', name: 'segment-new', component: () => import('./pages/segments/SegmentEditPage.vue'), meta: { need: 'campaigns:write', title: 'segments.new' } },
          { path: 'segments/:id(\\d+)', name: 'segment', component: () => import('./pages/segments/SegmentEditPage.vue'), meta: { need: 'campaigns:read', title: 'nav.segments' } },
          { path: 'segments/:id(\\d+)/members', name: 'segment-members', component: () => import('./pages/segments/SegmentMembersPage.vue'), meta: { need: 'members:read', title: 'nav.segments' } },
          { path: 'campaigns', name: 'campaigns', component: () => import('./pages/campaigns/CampaignsPage.vue'), meta: { need: 'campaigns:read', title: 'nav.campaigns' } },
          { path: 'campaigns/new', name: 'campaign-new', component: () => import('./pages/campaigns/ComposerPage.vue'), meta: { need: 'campaigns:write', title: 'composer.title' } },
          { path: 'campaigns/:id(\\d+)', name: 'campaign', component: screen(() => import('./pages/campaigns/CampaignPage.vue')), meta: { need: 'campaigns:read', title: 'nav.campaigns' } },
          { path: 'campaigns/:id(\\d+)/edit', name: 'campaign-edit', component: () => import('./pages/campaigns/ComposerPage.vue'), meta: { need: 'campaigns:write', title: 'composer.editTitle' } },
          { path: 'calendar', name: 'calendar', component: () => import('./pages/calendar/CalendarPage.vue'), meta: { need: 'campaigns:read', title: 'nav.calendar' } },
          { path: 'care', name: 'care', component: screen(() => import('./pages/care/CarePage.vue')), meta: { need: 'campaigns:read', title: 'nav.care' } },
          { path: 'win-back', name: 'win-back', component: screen(() => import('./pages/winback/WinBackPage.vue')), meta: { need: 'campaigns:read', title: 'nav.winBack' } },
          { path: 'tag-rules', name: 'tag-rules', component: screen(() => import('./pages/tagrules/TagRulesPage.vue')), meta: { need: 'members:read', title: 'nav.tagRules' } },
          { path: 'surveys', name: 'surveys', component: screen(() => import('./pages/surveys/SurveysPage.vue')), meta: { need: 'campaigns:read', title: 'nav.surveys' } },
          // The merchant's setup screens (points, tiers, staff, settings...).
          { path: 'points/rules', name: 'points-rules', component: screen(() => import('./pages/points/PointsRulesPage.vue')), meta: { need: 'points:read', title: 'nav.pointsRules' } },
          { path: 'points/tiers', name: 'tiers', component: screen(() => import('./pages/points/TiersPage.vue')), meta: { need: 'points:read', title: 'nav.tiers' } },
          { path: 'audit', name: 'audit', component: screen(() => import('./pages/audit/AuditPage.vue')), meta: { need: 'audit:read', title: 'nav.audit' } },
          { path: 'staff', name: 'staff', component: screen(() => import('./pages/staff/StaffPage.vue')), meta: { need: 'staff:manage', title: 'nav.staff' } },
          { path: 'api-keys', name: 'api-keys', component: screen(() => import('./pages/apikeys/ApiKeysPage.vue')), meta: { need: 'apikeys:manage', title: 'nav.apiKeys' } },
          { path: 'settings', name: 'settings', component: screen(() => import('./pages/settings/SettingsPage.vue')), meta: { need: 'settings:read', title: 'nav.settings' } },
          { path: 'forbidden', name: 'forbidden', component: () => import('./pages/status/StatusPage.vue'), props: { kind: 'forbidden' } },
          { path: ':rest(.*)*', name: 'not-found', component: () => import('./pages/status/StatusPage.vue'), props: { kind: 'not-found' } },
        ],
      },
    ],
    scrollBehavior: () => ({ top: 0 }),
  })

  const session = useSession(pinia)

  setUnauthorizedHandler(() => {
    session.clear()
    const current = router.currentRoute.value
    if (!current.meta.public) void router.replace({ name: 'login', query: { redirect: current.fullPath, expired: '1' } })
  })

  router.beforeEach(async (to: RouteLocationNormalized) => {
    if (to.meta.public) {
      return session.loggedIn && to.name === 'login' ? { name: 'dashboard' } : true
    }
    if (!session.loggedIn) return { name: 'login', query: { redirect: to.fullPath } }
    if (!session.me) {
      try {
        await session.load()
      } catch {
        // A 401 has cleared the session already; anything else: start over.
        session.clear()
        return { name: 'login', query: { redirect: to.fullPath } }
      }
    }
    if (!session.can(to.meta.need)) {
      // The start page is the first area the person may open.
      if (to.name === 'dashboard') {
        const first = navItems.find((n) => session.can(n.need))
        if (first) return { name: first.route }
      }
      return { name: 'forbidden' }
    }
    return true
  })
  return router
}
