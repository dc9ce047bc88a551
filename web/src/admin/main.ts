import { createApp } from 'vue'
import type { Composer } from 'vue-i18n'
import { createPinia } from 'pinia'
import App from './App.vue'
import { createPanelRouter } from './router'
import { createPanelI18n, initialLocale, loadMessages, LOCALE_KEY } from '@/shared/i18n'
import 'element-plus/theme-chalk/base.css'
import './styles.css'

async function start() {
  const locale = initialLocale(localStorage.getItem(LOCALE_KEY))
  document.documentElement.lang = locale
  // English, when chosen before, is fetched before the first paint.
  const i18n = createPanelI18n(locale, locale === 'en' ? { en: await loadMessages('en') } : {})
  const pinia = createPinia()
  const app = createApp(App)
  app.use(pinia)
  app.use(i18n)
  app.use(createPanelRouter(pinia, () => i18n.global as unknown as Composer))
  app.mount('#app')
}
void start()
