// Lookups several screens share: the merchant's tags and tiers by id.
// Loaded once per page; a failure leaves ids shown as numbers and is reported.
import { computed, shallowRef } from 'vue'
import { api, unwrap } from '@/api/client'
import type { components } from '@/api/schema'
import { useSession } from '@/admin/stores/session'

export type Tag = components['schemas']['Tag'] & { member_count?: number }
export type Tier = components['schemas']['PointsTier']

export function useReference() {
  const session = useSession()
  const tags = shallowRef<Tag[]>([])
  const tiers = shallowRef<Tier[]>([])
  const error = shallowRef<unknown>(null)

  async function load() {
    try {
      const [tg, tr] = await Promise.all([
        unwrap(api.GET('/api/admin/v1/tags')),
        session.can('points:read') ? unwrap(api.GET('/api/admin/v1/tiers')) : Promise.resolve({ tiers: [] }),
      ])
      tags.value = (tg.tags ?? []) as Tag[]
      tiers.value = (tr.tiers ?? []) as Tier[]
    } catch (err) {
      error.value = err
    }
  }

  const tagById = computed(() => new Map(tags.value.map((x) => [x.id, x])))
  const tierById = computed(() => new Map(tiers.value.map((x) => [x.id, x])))
  return { tags, tiers, error, load, tagById, tierById }
}
