import { createApp } from 'vue'
import App from './App.vue'
import { createMemberRouter } from './router'
import { createMemberI18n, loadEnglish, MEMBER_LOCALE_KEY } from './i18n'
import { takeOAuthReturn } from './signin'
import { prefetchHome } from './prefetch'
import './styles.css'

async function start() {
  // WeChat's code and state leave the address before the router reads it;
  // a member already signed in gets the card's calls sent before the app
  // is built (on a slow phone that takes long enough to matter).
  const returned = takeOAuthReturn()
  if (!returned) prefetchHome()
  const locale = localStorage.getItem(MEMBER_LOCALE_KEY) === 'en' ? 'en' : 'zh-CN'
  document.documentElement.lang = locale
  const i18n = createMemberI18n(locale, locale === 'en' ? await loadEnglish() : undefined)
  const app = createApp(App, { returned })
  app.use(i18n)
  app.use(createMemberRouter())
  app.mount('#app')
}
void start()
