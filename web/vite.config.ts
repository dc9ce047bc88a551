import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vitest/config'
import type { Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'
import AutoImport from 'unplugin-auto-import/vite'
import Components from 'unplugin-vue-components/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'
import { VantResolver } from '@vant/auto-import-resolver'

// One build, one entry per face: src/admin/index.html becomes
// dist/admin/index.html (served at /admin/), src/member/index.html becomes
// dist/member/index.html (served at /m/<merchant_id>/). Hashed chunks land in dist/assets/, served at
// /assets/ with a year-long cache; the HTML is never cached.
//
// The output must be reproducible (CI rebuilds and diffs dist/), so nothing
// here may depend on the time, the machine or absolute paths.
// Vant's icon font: its CSS carries the font inline (base64, about 28 KB
// gzipped) and names a CDN copy (at.alicdn.com) after it. The member
// centre loads nothing from other sites (its CSP says so, and WeChat's
// browser on a poor network should not wait on a CDN), and the inline copy
// would make every page's CSS, which blocks the first paint, carry the font.
// So the CDN source is dropped and, in the build, the font becomes a hashed
// file of its own that the browser fetches only when an icon is drawn.
let dev = false
const vantIconsOffline: Plugin = {
  name: 'vant-icons-offline',
  enforce: 'pre',
  configResolved(c) {
    dev = c.command === 'serve'
  },
  transform(code, id) {
    if (!/[\\/]vant[\\/].*icon[\\/]index\.css$/.test(id)) return null
    let out = code.replace(/,\s*url\(\/\/at\.alicdn\.com[^)]*\)\s*format\([^)]*\)/g, '')
    if (!dev) {
      out = out.replace(/url\(data:font\/woff2;charset=utf-8;base64,([A-Za-z0-9+/=]+)\)/, (_, b64: string) => {
        const ref = this.emitFile({ type: 'asset', name: 'vant-icon.woff2', source: Buffer.from(b64, 'base64') })
        return `url(__VITE_ASSET__${ref}__)`
      })
    }
    return out
  },
}

export default defineConfig({
  root: fileURLToPath(new URL('./src', import.meta.url)),
  base: '/',
  publicDir: false,
  plugins: [
    vantIconsOffline,
    vue(),
    // Element Plus on demand: components used in templates and the service
    // APIs (ElMessage, ElMessageBox) are imported with their CSS only where used.
    AutoImport({
      resolvers: [ElementPlusResolver()],
      dts: false,
    }),
    // Vant (the member centre) the same way: <van-button> imports Button and
    // its CSS in the chunk that uses it.
    Components({
      resolvers: [ElementPlusResolver({ importStyle: 'css' }), VantResolver({ importStyle: 'css' })],
      dirs: [],
      dts: false,
    }),
  ],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  define: {
    __VUE_OPTIONS_API__: 'false',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
    __VUE_I18N_FULL_INSTALL__: 'false',
    __VUE_I18N_LEGACY_API__: 'false',
    __INTLIFY_PROD_DEVTOOLS__: 'false',
  },
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    // dist/.vite/manifest.json: the chunk graph, read by e2e/budget.mjs to
    // measure each route's initial JavaScript.
    manifest: true,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      input: {
        admin: fileURLToPath(new URL('./src/admin/index.html', import.meta.url)),
        member: fileURLToPath(new URL('./src/member/index.html', import.meta.url)),
      },
    },
  },
  server: {
    port: 5173,
    // `npm run dev` against a running service (LOYALTY_HTTP_ADDR=127.0.0.1:8080).
    proxy: { '/api': 'http://127.0.0.1:8080' },
  },
  test: {
    root: fileURLToPath(new URL('.', import.meta.url)),
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
