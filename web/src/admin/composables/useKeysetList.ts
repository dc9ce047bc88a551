// A keyset-paged list as the API offers it: the first page, then "more"
// from the cursor the last page returned, with its loading and error state
// (shown by ErrorAlert and MorePager). `fetch` gets the cursor (undefined
// for the first page) and returns the page's items and the next cursor.
import { ref, shallowRef, type Ref, type ShallowRef } from 'vue'

export interface KeysetPage<T, C> {
  items: T[]
  next: C | null | undefined
}

export interface KeysetList<T> {
  items: ShallowRef<T[]>
  hasMore: Ref<boolean>
  loading: Ref<boolean>
  error: ShallowRef<unknown>
  /** load reads the first page again, or the next one when more is true. */
  load: (more?: boolean) => Promise<void>
}

export function useKeysetList<T, C = string>(fetch: (cursor: C | undefined) => Promise<KeysetPage<T, C>>): KeysetList<T> {
  const items = shallowRef<T[]>([])
  const cursor = shallowRef<C | null>(null)
  const hasMore = ref(false)
  const loading = ref(false)
  const error = shallowRef<unknown>(null)
  let seq = 0
  async function load(more = false) {
    const mine = ++seq
    loading.value = true
    error.value = null
    try {
      const page = await fetch(more && cursor.value !== null ? cursor.value : undefined)
      if (mine !== seq) return
      items.value = more ? [...items.value, ...page.items] : page.items
      cursor.value = page.next ?? null
      hasMore.value = cursor.value !== null
    } catch (err) {
      if (mine === seq) error.value = err
    } finally {
      if (mine === seq) loading.value = false
    }
  }
  return { items, hasMore, loading, error, load }
}
