// A call's state for a screen: loading, its data, its error (shown by
// ErrorAlert with a retry), never a silent failure.
import { ref, shallowRef, type Ref, type ShallowRef } from 'vue'

export interface Loader<T> {
  data: ShallowRef<T | null>
  loading: Ref<boolean>
  error: ShallowRef<unknown>
  run: () => Promise<void>
}

export function useLoader<T>(fn: () => Promise<T>): Loader<T> {
  const data = shallowRef<T | null>(null)
  const loading = ref(false)
  const error = shallowRef<unknown>(null)
  let seq = 0
  async function run() {
    const mine = ++seq
    loading.value = true
    error.value = null
    try {
      const v = await fn()
      if (mine === seq) data.value = v
    } catch (err) {
      if (mine === seq) error.value = err
    } finally {
      if (mine === seq) loading.value = false
    }
  }
  return { data, loading, error, run }
}
