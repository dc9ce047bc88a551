import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { createPanelRouter } from './router'
import { createPanelI18n, initialLocale, LOCALE_KEY } from '@/shared/i18n'
import 'element-plus/theme-chalk/base.css'
import './styles.css'

const locale = initialLocale(localStorage.getItem(LOCALE_KEY))
document.documentElement.lang = locale
const i18n = createPanelI18n(locale)
const pinia = createPinia()
const app = createApp(App)
app.use(pinia)
app.use(i18n)
app.use(createPanelRouter(pinia))
app.mount('#app')
