// Routes under /m/<merchant_id>/; every page is its own lazy chunk except
// the home page (the card is what a member opens the centre for).
import { createRouter, createWebHistory } from 'vue-router'
import HomePage from './pages/HomePage.vue'
import { session } from './session'

export function createMemberRouter() {
  return createRouter({
    history: createWebHistory(`/m/${session.merchantId}/`),
    routes: [
      { path: '/', name: 'home', component: HomePage },
      { path: '/rewards', name: 'rewards', component: () => import('./pages/RewardsPage.vue') },
      { path: '/coupons', name: 'coupons', component: () => import('./pages/CouponsPage.vue') },
      { path: '/points', name: 'points', component: () => import('./pages/PointsPage.vue') },
      { path: '/checkin', name: 'checkin', component: () => import('./pages/CheckinPage.vue') },
      { path: '/profile', name: 'profile', component: () => import('./pages/ProfilePage.vue') },
      { path: '/survey', name: 'survey', component: () => import('./pages/SurveyPage.vue') },
      { path: '/:rest(.*)*', redirect: '/' },
    ],
    scrollBehavior: () => ({ top: 0 }),
  })
}
