import { createApp } from 'vue'
import App from './App.vue'
import { createMemberRouter } from './router'
import { createMemberI18n, loadEnglish, MEMBER_LOCALE_KEY } from './i18n'
import { takeOAuthReturn } from './signin'
import './styles.css'

async function start() {
  const returned = takeOAuthReturn()
  const locale = localStorage.getItem(MEMBER_LOCALE_KEY) === 'en' ? 'en' : 'zh-CN'
  document.documentElement.lang = locale
  const i18n = createMemberI18n(locale, locale === 'en' ? await loadEnglish() : undefined)
  const app = createApp(App, { returned })
  app.use(i18n)
  app.use(createMemberRouter())
  app.mount('#app')
}
void start()
