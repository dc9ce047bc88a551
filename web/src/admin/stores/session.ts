// The signed-in staff member, shared by every screen: who they are, what
// they may do, and the merchant's time zone for dates.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, browserTokens, unwrap } from '@/api/client'
import { DEFAULT_TIME_ZONE } from '@/shared/format'
import { allows, type Permission, type Requirement, type Role } from '@/admin/permissions'

/** The caller, as GET /api/admin/v1/me describes it. */
export interface Me {
  merchant_id?: number
  staff_id?: number
  api_key_id?: number
  name?: string
  role?: Role
  permissions?: Permission[]
}

export const useSession = defineStore('session', () => {
  const token = ref<string | null>(browserTokens.get())
  const me = ref<Me | null>(null)
  const timeZone = ref(DEFAULT_TIME_ZONE)
  const merchantName = ref('')

  const permissions = computed<Permission[]>(() => me.value?.permissions ?? [])
  const loggedIn = computed(() => token.value !== null)

  function can(need: Requirement): boolean {
    return allows(permissions.value, need)
  }

  /** load reads the caller and, when allowed, the merchant's name and zone. */
  async function load(): Promise<void> {
    me.value = await unwrap(api.GET('/api/admin/v1/me'))
    if (can('settings:read')) {
      const s = await unwrap(api.GET('/api/admin/v1/settings'))
      const settings = s as { time_zone?: string; name?: string }
      if (settings.time_zone) timeZone.value = settings.time_zone
      merchantName.value = settings.name ?? ''
    }
  }

  async function login(username: string, password: string): Promise<void> {
    const res = await unwrap(api.POST('/api/admin/v1/login', { body: { username, password } }))
    if (!res.token) throw new Error('login answered without a token')
    token.value = res.token
    browserTokens.set(res.token)
    await load()
  }

  /** clear forgets the session locally (after a 401 or a logout). */
  function clear(): void {
    token.value = null
    me.value = null
    browserTokens.set(null)
  }

  async function logout(): Promise<void> {
    try {
      await unwrap(api.POST('/api/admin/v1/logout'))
    } finally {
      clear()
    }
  }

  return { token, me, timeZone, merchantName, permissions, loggedIn, can, load, login, logout, clear }
})
