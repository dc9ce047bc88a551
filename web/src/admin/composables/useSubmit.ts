// A form's submission: busy while it runs, the error it ended with (shown
// by ErrorAlert) and the API's `fields` put next to the form's items.
// `run` resolves to whether it succeeded.
import { ref, shallowRef, type Ref, type ShallowRef } from 'vue'
import type { useFieldErrors } from './useFieldErrors'

export interface Submit {
  busy: Ref<boolean>
  error: ShallowRef<unknown>
  run: () => Promise<boolean>
}

export function useSubmit(fn: () => Promise<void>, fields?: ReturnType<typeof useFieldErrors>): Submit {
  const busy = ref(false)
  const error = shallowRef<unknown>(null)
  async function run() {
    busy.value = true
    error.value = null
    fields?.clear()
    try {
      await fn()
      return true
    } catch (err) {
      error.value = err
      fields?.take(err)
      return false
    } finally {
      busy.value = false
    }
  }
  return { busy, error, run }
}
